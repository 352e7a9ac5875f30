import { connectedDevicesAfter, latestConnectedRound } from '../db/devices';
import type { Db } from '../db/knex';
import type { Logger } from '../logger';
import type { Liveness } from '../redis/liveness';
import type { Rounds } from '../redis/rounds';

/**
 * When Redis has lost the liveness state (a new or wiped Redis), rebuilds it from Postgres without
 * disconnecting anyone: the round counter is raised above every round Postgres remembers, and every
 * CONNECTED device counts as heard in the current round. A no-op while the state is intact.
 */
export function createLivenessRecovery(deps: {
  db: Db;
  liveness: Liveness;
  rounds: Rounds;
  logger: Logger;
  owner: string;
}) {
  const { db, liveness } = deps;
  return async function ensureLivenessState(): Promise<void> {
    if (await liveness.seeded()) return;
    if (!(await liveness.claimSeeding(deps.owner))) return;
    let done = false;
    try {
      await deps.rounds.raiseTo(await latestConnectedRound(db));
      const round = await deps.rounds.current();
      let seeded = 0;
      for (let after = 0; ;) {
        const page = await connectedDevicesAfter(db, after, 10_000);
        if (page.length === 0) break;
        await liveness.seed(
          page.map((d) => d.id),
          round,
        );
        seeded += page.length;
        after = page.at(-1)!.seq;
      }
      done = true;
      deps.logger.info({ round, seeded }, 'liveness state initialised from Postgres');
    } finally {
      await liveness.endSeeding(done);
    }
  };
}
