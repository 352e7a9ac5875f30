import { z } from 'zod';
import { conflict, notFound } from '../domain/errors';
import { recordingEvent } from '../domain/events';
import type { Db } from '../db/knex';
import { findEffect } from '../db/effects';
import { findRecording, recordingsOfSession, setRecordingStateWithEvent, type Recording } from '../db/media';
import type { Tgdm } from '../integrations/tgdm';
import { upstream } from './media-errors';

/**
 * Stopping TGDM recordings: one an operator names, or the automatic ones of an ended session (the
 * disconnect effect; manual recordings are the operator's). "Already stopped" at TGDM is success;
 * the STARTED -> STOPPED change and RECORDING_STOPPED commit together.
 */
export function createStopRecording(deps: { db: Db; tgdm: Tgdm }) {
  async function markStopped(r: Recording): Promise<Recording> {
    const stopped = await setRecordingStateWithEvent(
      deps.db,
      r.id,
      { from: ['STARTED'], to: 'STOPPED' },
      recordingEvent('RECORDING_STOPPED', r),
    );
    return stopped ?? (await findRecording(deps.db, r.id))!;
  }

  return {
    /** An operator's stop: a stopped recording is answered as it is; TGDM failing is a 502. */
    async byId(rawId: string | undefined): Promise<Recording> {
      const id = z.uuid().safeParse(rawId);
      const recording = id.success ? await findRecording(deps.db, id.data) : undefined;
      if (!recording) throw notFound('RECORDING_NOT_FOUND', 'no such recording');
      if (recording.state === 'STOPPED') return recording;
      if (recording.state !== 'STARTED') {
        throw conflict('INVALID_RECORDING_STATE', `a ${recording.state} recording cannot be stopped`, {
          state: recording.state,
        });
      }
      try {
        await deps.tgdm.stopRecording(recording.tgdmId!);
      } catch (err) {
        throw upstream('TGDM', err);
      }
      return markStopped(recording);
    },

    /**
     * The automatic recordings of the ended session. 'not-yet' while a start of the same session is
     * still in flight, so that a recording started late is stopped too.
     */
    async ofSession(sessionId: string): Promise<'done' | 'not-yet'> {
      const start = await findEffect(deps.db, sessionId, 'start-recording');
      const recordings = await recordingsOfSession(deps.db, sessionId);
      if (start?.status === 'PENDING' || recordings.some((r) => r.state === 'STARTING')) return 'not-yet';
      for (const r of recordings) {
        if (r.state !== 'STARTED' || r.policy !== 'AUTOMATIC') continue;
        await deps.tgdm.stopRecording(r.tgdmId!);
        await markStopped(r);
      }
      return 'done';
    },
  };
}

export type StopRecording = ReturnType<typeof createStopRecording>;
