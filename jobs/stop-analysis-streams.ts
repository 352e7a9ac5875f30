import { done, type EffectDefinition } from '../src/effects/run-effect';
import type { StopAnalysisStreams } from '../src/operations/stop-analysis-streams';

/** Disconnect effect: the Mantis streams the device had before its session ended are stopped. */
export function createStopAnalysisStreams(deps: { stopStreams: StopAnalysisStreams }): EffectDefinition {
  return {
    kind: 'stop-analysis-streams',
    async run({ sessionId, deviceId }) {
      await deps.stopStreams.ofSession(sessionId, deviceId);
      return done();
    },
  };
}
