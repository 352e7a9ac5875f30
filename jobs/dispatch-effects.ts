import type { JobData } from '../src/queues/table';
import type { SessionEffects } from '../src/domain/effects';

export type DispatchEffectsData = JobData['dispatchEffects'];

/**
 * Enqueues the effect jobs of a chunk of sessions whose transitions are committed: the fan-out of a
 * mass disconnect, taken off the evaluation's path. Effect job ids are deterministic, so a retried
 * dispatch adds nothing twice.
 */
export function createDispatchEffects(deps: {
  enqueueEffects: (sessions: readonly SessionEffects[]) => Promise<void>;
}) {
  return async (data: DispatchEffectsData): Promise<{ effects: number }> => {
    await deps.enqueueEffects(data.sessions);
    return { effects: data.sessions.reduce((n, s) => n + s.effects.length, 0) };
  };
}
