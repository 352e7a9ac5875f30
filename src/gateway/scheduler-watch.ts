import type { Logger } from '../logger';
import type { RoundScheduler } from '../queues/round-scheduler';

/**
 * The round scheduler lives in Redis: if Redis lost it (a new or wiped server), it is put back.
 * A check that fails is logged; the next one tries again.
 */
export function createSchedulerWatch(deps: {
  scheduler: RoundScheduler;
  intervalSeconds: () => Promise<number>;
  logger: Logger;
}) {
  return async function check(): Promise<void> {
    try {
      if (await deps.scheduler.isSet()) return;
      deps.logger.warn('round scheduler missing from Redis: re-creating it');
      await deps.scheduler.ensure(await deps.intervalSeconds(), true);
    } catch (err) {
      deps.logger.warn({ err: (err as Error).message }, 'could not check the round scheduler');
    }
  };
}
