import type { Rounds } from '../redis/rounds';
import type { Queues } from './connection';

/**
 * Keeps the BullMQ job scheduler's period equal to `device.healthcheckIntervalSeconds`. Called on
 * every settings change and by every round, so a change applies from the next round in every process.
 */
export function createRoundScheduler(
  rounds: Pick<Rounds, 'schedulerEvery' | 'noteSchedulerEvery'>,
  queues: Pick<Queues, 'scheduleRounds'>,
) {
  return {
    async ensure(intervalSeconds: number, force = false): Promise<void> {
      if (!force && (await rounds.schedulerEvery()) === intervalSeconds) return;
      await queues.scheduleRounds(intervalSeconds);
      await rounds.noteSchedulerEvery(intervalSeconds);
    },
    /** Whether the scheduler's period is on record (absent: Redis lost the scheduler with it). */
    isSet: async (): Promise<boolean> => (await rounds.schedulerEvery()) !== null,
  };
}
export type RoundScheduler = ReturnType<typeof createRoundScheduler>;
