import { clientEvent } from '../src/domain/events';
import { finishEffect, findEffect } from '../src/db/effects';
import type { Db } from '../src/db/knex';
import { recordingsOfSession, setRecordingState } from '../src/db/media';
import { appendEvents } from '../src/db/outbox';
import type { EffectDefinition } from '../src/effects/run-effect';
import type { Tgdm } from '../src/integrations/tgdm';

export const name = 'stop-recording';

/**
 * Disconnect effect: stops the automatic TGDM recordings of the ended session (manual recordings are
 * the operator's). "Already stopped" at TGDM is success. Waits (retries) while a start of the same
 * session is still in flight, so a recording started late is stopped too.
 */
export function createStopRecording(deps: { db: Db; tgdm: Tgdm }): EffectDefinition {
  return {
    kind: 'stop-recording',
    async run({ sessionId, deviceId }) {
      if ((await findEffect(deps.db, sessionId, 'stop-recording'))?.status !== 'PENDING') return;
      // The recordings of a session are those its connect effect started.
      const connectSession = await deps
        .db('effects')
        .where({ device_id: deviceId, kind: 'start-recording', session_id: sessionId })
        .first<{ status: string } | undefined>('status');
      const recordings = await recordingsOfSession(deps.db, sessionId);
      if (recordings.some((r) => r.state === 'STARTING') || connectSession?.status === 'PENDING') {
        throw new Error('the recording of this session is still being started; retrying');
      }
      for (const r of recordings.filter((x) => x.state === 'STARTED' && x.policy === 'AUTOMATIC')) {
        await deps.tgdm.stopRecording(r.tgdmId!);
        await deps.db.transaction(async (trx) => {
          const stopped = await setRecordingState(trx, r.id, ['STARTED'], 'STOPPED');
          if (stopped) {
            await appendEvents(trx, [
              clientEvent('RECORDING_STOPPED', deviceId, {
                recordingId: r.id,
                track: r.track,
                policy: r.policy,
                sessionId,
              }),
            ]);
          }
        });
      }
      await finishEffect(deps.db, sessionId, 'stop-recording', 'DONE');
    },
  };
}
