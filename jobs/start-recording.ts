import { randomUUID } from 'node:crypto';
import { trackEndpoint, type Track } from '../src/domain/device';
import { clientEvent } from '../src/domain/events';
import { finishEffect, lockEffect, sessionEnd } from '../src/db/effects';
import type { Db } from '../src/db/knex';
import { insertRecording, recordingsOfSession, setRecordingState } from '../src/db/media';
import { appendEvents } from '../src/db/outbox';
import type { EffectDefinition } from '../src/effects/run-effect';
import type { Tgdm } from '../src/integrations/tgdm';

export const name = 'start-recording';

export interface StartRecordingDeps {
  readonly db: Db;
  readonly tgdm: Tgdm;
  /** Base URL of Moth as TGDM reaches it: the recording URI is this plus the Track's sub path. */
  readonly mothUrl: string;
  /** Which Tracks are recorded automatically (default: VIDEO). */
  readonly recorded?: (t: Track) => boolean;
}

/**
 * Connect effect of the automatic recording policy: starts a TGDM recording of each recorded Track
 * of the device for this session. A row is written (STARTING) before TGDM is asked, with our id as
 * the idempotency key, so a crash between TGDM's answer and our commit cannot record twice.
 */
export function createStartRecording(deps: StartRecordingDeps): EffectDefinition {
  const recorded = deps.recorded ?? ((t: Track) => t.type === 'VIDEO');
  return {
    kind: 'start-recording',
    async run({ sessionId, deviceId }) {
      const proceed = await deps.db.transaction(async (trx) => {
        const effect = await lockEffect(trx, sessionId, 'start-recording');
        if (effect?.status !== 'PENDING') return false;
        const session = await sessionEnd(trx, sessionId);
        const device = await trx('devices')
          .where({ id: deviceId })
          .first<{ tracks: Track[]; public_channel: string }>('tracks', 'public_channel');
        const existing = await recordingsOfSession(trx, sessionId);
        if (existing.length === 0 && (session?.endedAt || !device)) {
          // The session is already over: nothing to record, nothing was started.
          await finishEffect(trx, sessionId, 'start-recording', 'DONE');
          return false;
        }
        for (const track of device?.tracks.filter(recorded) ?? []) {
          await insertRecording(trx, {
            id: randomUUID(),
            deviceId,
            sessionId,
            track: track.name,
            uri: new URL(trackEndpoint(device.public_channel, track.name, 'sub'), deps.mothUrl).toString(),
            policy: 'AUTOMATIC',
            state: 'STARTING',
          });
        }
        return true;
      });
      if (!proceed) return;
      for (const r of (await recordingsOfSession(deps.db, sessionId)).filter((x) => x.state === 'STARTING')) {
        const { id: tgdmId } = await deps.tgdm.startRecording({
          uri: r.uri,
          deviceId,
          track: r.track,
          policy: 'AUTOMATIC',
          key: r.id,
        });
        await deps.db.transaction(async (trx) => {
          const started = await setRecordingState(trx, r.id, ['STARTING'], 'STARTED', { tgdmId });
          if (started) {
            await appendEvents(trx, [
              clientEvent('RECORDING_STARTED', deviceId, {
                recordingId: r.id,
                track: r.track,
                policy: 'AUTOMATIC',
                sessionId,
              }),
            ]);
          }
        });
      }
      await finishEffect(deps.db, sessionId, 'start-recording', 'DONE');
    },
    async onFailed({ sessionId }, error) {
      for (const r of await recordingsOfSession(deps.db, sessionId)) {
        if (r.state === 'STARTING') await setRecordingState(deps.db, r.id, ['STARTING'], 'FAILED', { error });
      }
    },
  };
}
