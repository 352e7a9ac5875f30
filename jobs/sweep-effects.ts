import type { Logger } from '../src/logger';

/**
 * Re-enqueues effect rows still PENDING a while after they were written. Job ids are deterministic
 * per (effect, session), so an effect whose job exists is not enqueued twice: this only recovers
 * the ones lost between a commit and a queue add (a crash, a Redis outage).
 */
export function createSweepEffects<Effect>(deps: {
  stalePending: () => Promise<Effect[]>;
  enqueue: (effects: readonly Effect[]) => Promise<void>;
  logger: Logger;
}) {
  return async (): Promise<{ requeued: number }> => {
    const pending = await deps.stalePending();
    if (pending.length > 0) await deps.enqueue(pending);
    if (pending.length > 0)
      deps.logger.info({ pending: pending.length }, 'sweeper re-enqueued pending effects');
    return { requeued: pending.length };
  };
}
