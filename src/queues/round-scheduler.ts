import type { RedisClient as Redis } from '../redis/connection';
import type { RedisKeys } from '../redis/keys';
import type { Queues } from './connection';

/**
 * Keeps the BullMQ job scheduler's period equal to `device.healthcheckIntervalSeconds`. Called on
 * every settings change and by every round, so a change applies from the next round in every process.
 */
export function createRoundScheduler(redis: Redis, keys: RedisKeys, queues: Pick<Queues, 'scheduleRounds'>) {
  return {
    async ensure(intervalSeconds: number, force = false): Promise<void> {
      if (!force && (await redis.get(keys.rounds.schedulerEvery)) === String(intervalSeconds)) return;
      await queues.scheduleRounds(intervalSeconds);
      await redis.set(keys.rounds.schedulerEvery, String(intervalSeconds));
    },
  };
}
export type RoundScheduler = ReturnType<typeof createRoundScheduler>;
