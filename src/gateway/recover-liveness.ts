import { connectedDevicesAfter, latestConnectedRound } from '../db/devices';
import type { Db } from '../db/knex';
import type { Logger } from '../logger';
import type { RedisClient } from '../redis/connection';
import type { RedisKeys } from '../redis/keys';
import type { Liveness } from '../redis/liveness';
import type { Rounds } from '../redis/rounds';

/**
 * When Redis has lost the liveness state (a new or wiped Redis), rebuilds it from Postgres without
 * disconnecting anyone: the round counter is raised above every round Postgres remembers, and every
 * CONNECTED device counts as heard in the current round. A no-op while the state is intact.
 */
export function createLivenessRecovery(deps: {
  db: Db;
  redis: RedisClient;
  keys: RedisKeys;
  liveness: Liveness;
  rounds: Rounds;
  logger: Logger;
  owner: string;
}) {
  const { db, redis, keys } = deps;
  return async function ensureLivenessState(): Promise<void> {
    if (await redis.exists(keys.liveness.seeded)) return;
    if ((await redis.set(keys.liveness.seedLock, deps.owner, 'PX', 60_000, 'NX')) !== 'OK') return;
    try {
      await deps.rounds.raiseTo(await latestConnectedRound(db));
      const round = await deps.rounds.current();
      let seeded = 0;
      for (let after = 0; ;) {
        const page = await connectedDevicesAfter(db, after, 10_000);
        if (page.length === 0) break;
        await deps.liveness.seed(
          page.map((d) => d.id),
          round,
        );
        seeded += page.length;
        after = page.at(-1)!.seq;
      }
      await redis.set(keys.liveness.seeded, String(Date.now()));
      deps.logger.info({ round, seeded }, 'liveness state initialised from Postgres');
    } finally {
      await redis.del(keys.liveness.seedLock);
    }
  };
}
