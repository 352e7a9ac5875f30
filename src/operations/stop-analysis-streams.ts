import { z } from 'zod';
import { conflict, notFound } from '../domain/errors';
import { clientEvent } from '../domain/events';
import { sessionEnd } from '../db/effects';
import type { Db } from '../db/knex';
import { activeStreamsBefore, findStream, setStreamState, type AnalysisStream } from '../db/media';
import { appendEvents } from '../db/outbox';
import type { Mantis } from '../integrations/mantis';
import { upstream } from './media-errors';

/**
 * Stopping Mantis streams: one an operator names, or (the disconnect effect) every ACTIVE stream of
 * the device started before its session ended; a newer session's streams are left alone. "Already
 * stopped" at Mantis is success; the ACTIVE -> STOPPED change and its event commit together.
 */
export function createStopAnalysisStreams(deps: { db: Db; mantis: Mantis }) {
  async function markStopped(s: AnalysisStream, sessionId: string | null): Promise<AnalysisStream> {
    return deps.db.transaction(async (trx) => {
      const stopped = await setStreamState(trx, s.id, ['ACTIVE'], 'STOPPED');
      if (!stopped) return (await findStream(trx, s.id))!;
      await appendEvents(trx, [
        clientEvent('ANALYSIS_STREAM_STOPPED', s.deviceId, {
          streamId: s.id,
          track: s.track,
          pipeline: s.pipeline,
          sessionId,
        }),
      ]);
      return stopped;
    });
  }

  return {
    async byId(rawId: string | undefined): Promise<AnalysisStream> {
      const id = z.uuid().safeParse(rawId);
      const stream = id.success ? await findStream(deps.db, id.data) : undefined;
      if (!stream) throw notFound('ANALYSIS_STREAM_NOT_FOUND', 'no such analysis stream');
      if (stream.state === 'STOPPED') return stream;
      if (stream.state !== 'ACTIVE') {
        throw conflict('INVALID_STREAM_STATE', `a ${stream.state} stream cannot be stopped`, {
          state: stream.state,
        });
      }
      try {
        await deps.mantis.stopStream(stream.mantisId!);
      } catch (err) {
        throw upstream('MANTIS', err);
      }
      return markStopped(stream, null);
    },

    async ofSession(sessionId: string, deviceId: string): Promise<void> {
      const end = await sessionEnd(deps.db, sessionId);
      for (const s of await activeStreamsBefore(deps.db, deviceId, end?.endedAt ?? new Date())) {
        await deps.mantis.stopStream(s.mantisId!);
        await markStopped(s, sessionId);
      }
    },
  };
}

export type StopAnalysisStreams = ReturnType<typeof createStopAnalysisStreams>;
