import { done, type EffectDefinition } from '../src/effects/run-effect';
import type { abortSessionTask } from '../src/operations/abort-session-task';

/** Disconnect effect: the session's task is aborted in the transaction that ends the effect. */
export function createAbortTask(deps: { abortSessionTask: typeof abortSessionTask }): EffectDefinition {
  return {
    kind: 'abort-task',
    run: async ({ sessionId, deviceId }) => done((trx) => deps.abortSessionTask(trx, sessionId, deviceId)),
  };
}
