import { done, type EffectDefinition } from '../src/effects/run-effect';
import type { StartRecording } from '../src/operations/start-recording';

/** Connect effect of the automatic recording policy: the session's Tracks are recorded by TGDM. */
export function createStartRecording(deps: { startRecording: StartRecording }): EffectDefinition {
  return {
    kind: 'start-recording',
    async run({ sessionId, deviceId }) {
      await deps.startRecording.forSession(sessionId, deviceId);
      return done();
    },
    onFailed: ({ sessionId }, error) => deps.startRecording.failSession(sessionId, error),
  };
}
