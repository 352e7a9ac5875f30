import { randomUUID } from 'node:crypto';
import { clientEvent } from '../domain/events';
import { findLiveDevice } from '../db/devices';
import { deviceNotFound } from './device-errors';
import type { Db } from '../db/knex';
import { insertStream, type AnalysisStream } from '../db/media';
import { appendEvents } from '../db/outbox';
import type { Mantis } from '../integrations/mantis';
import { upstream } from './media-errors';
import { trackUri } from './start-recording';

/** An operator starts a Mantis pipeline on a Track; the stream row and its event commit together. */
export function createStartAnalysisStream(deps: { db: Db; mantis: Mantis; mothUrl: string }) {
  return async (deviceId: string, track: string, pipeline: string): Promise<AnalysisStream> => {
    const device = await findLiveDevice(deps.db, deviceId);
    if (!device) throw deviceNotFound();
    const inputUri = trackUri(deps.mothUrl, device, track);
    const id = randomUUID();
    let started: { id: string; outputUri: string | null };
    try {
      started = await deps.mantis.startStream({ inputUri, deviceId: device.id, track, pipeline, key: id });
    } catch (err) {
      throw upstream('MANTIS', err);
    }
    return deps.db.transaction(async (trx) => {
      const stream = await insertStream(trx, {
        id,
        deviceId: device.id,
        track,
        pipeline,
        inputUri,
        outputUri: started.outputUri,
        mantisId: started.id,
        state: 'ACTIVE',
      });
      await appendEvents(trx, [
        clientEvent('ANALYSIS_STREAM_STARTED', device.id, {
          streamId: id,
          track,
          pipeline,
          outputUri: started.outputUri,
        }),
      ]);
      return stream;
    });
  };
}
