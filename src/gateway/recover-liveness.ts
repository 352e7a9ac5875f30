import type { Db } from '../db/knex';
import type { Logger } from '../logger';
import type { RedisClient, RedisKeys } from '../redis/connection';
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
    if (await redis.exists(keys.livenessSeeded)) return;
    if ((await redis.set(keys.livenessSeedLock, deps.owner, 'PX', 60_000, 'NX')) !== 'OK') return;
    try {
      const row = await db('devices').max<{ max: string | null }[]>('connected_round as max').first();
      await deps.rounds.raiseTo(Number(row?.max ?? 0));
      const round = await deps.rounds.current();
      let seeded = 0;
      let after = 0;
      for (;;) {
        const page = (await db('devices')
          .select('id', 'seq')
          .where({ status: 'CONNECTED' })
          .whereNull('deleted_at')
          .where('seq', '>', after)
          .orderBy('seq')
          .limit(10_000)) as { id: string; seq: string }[];
        if (page.length === 0) break;
        await deps.liveness.seed(
          page.map((d) => d.id),
          round,
        );
        seeded += page.length;
        after = Number(page.at(-1)!.seq);
      }
      await redis.set(keys.livenessSeeded, String(Date.now()));
      deps.logger.info({ round, seeded }, 'liveness state initialised from Postgres');
    } finally {
      await redis.del(keys.livenessSeedLock);
    }
  };
}
