import { clientEvent } from '../src/domain/events';
import { finishEffect, findEffect, sessionEnd } from '../src/db/effects';
import type { Db } from '../src/db/knex';
import { activeStreamsBefore, setStreamState } from '../src/db/media';
import { appendEvents } from '../src/db/outbox';
import type { EffectDefinition } from '../src/effects/run-effect';
import type { Mantis } from '../src/integrations/mantis';

export const name = 'stop-analysis-streams';

/**
 * Disconnect effect: stops every ACTIVE Mantis stream of the device started before the session ended
 * (streams of a newer session are left alone). "Already stopped" at Mantis is success.
 */
export function createStopAnalysisStreams(deps: { db: Db; mantis: Mantis }): EffectDefinition {
  return {
    kind: 'stop-analysis-streams',
    async run({ sessionId, deviceId }) {
      if ((await findEffect(deps.db, sessionId, 'stop-analysis-streams'))?.status !== 'PENDING') return;
      const end = await sessionEnd(deps.db, sessionId);
      for (const s of await activeStreamsBefore(deps.db, deviceId, end?.endedAt ?? new Date())) {
        await deps.mantis.stopStream(s.mantisId!);
        await deps.db.transaction(async (trx) => {
          const stopped = await setStreamState(trx, s.id, ['ACTIVE'], 'STOPPED');
          if (stopped) {
            await appendEvents(trx, [
              clientEvent('ANALYSIS_STREAM_STOPPED', deviceId, {
                streamId: s.id,
                track: s.track,
                pipeline: s.pipeline,
                sessionId,
              }),
            ]);
          }
        });
      }
      await finishEffect(deps.db, sessionId, 'stop-analysis-streams', 'DONE');
    },
  };
}
