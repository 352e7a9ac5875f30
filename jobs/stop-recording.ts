import { done, notYet, type EffectDefinition } from '../src/effects/run-effect';
import type { StopRecording } from '../src/operations/stop-recording';

/** Disconnect effect: the session's automatic recordings are stopped, once its start is over. */
export function createStopRecording(deps: { stopRecording: StopRecording }): EffectDefinition {
  return {
    kind: 'stop-recording',
    async run({ sessionId }) {
      const outcome = await deps.stopRecording.ofSession(sessionId);
      return outcome === 'done' ? done() : notYet('the recording of this session is still being started');
    },
  };
}
