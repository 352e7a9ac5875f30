import Router from '@koa/router';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { trackEndpoint } from '../../domain/device';
import { AppError, conflict, notFound, validationFailed } from '../../domain/errors';
import { clientEvent } from '../../domain/events';
import { findLiveDevice, type Device } from '../../db/devices';
import type { Db } from '../../db/knex';
import {
  findRecording,
  findStream,
  insertRecording,
  insertStream,
  listDeviceRecordings,
  listDeviceStreams,
  setRecordingState,
  setStreamState,
  type AnalysisStream,
  type Recording,
} from '../../db/media';
import { appendEvents } from '../../db/outbox';
import { IntegrationError } from '../../integrations/http-client';
import type { Mantis } from '../../integrations/mantis';
import type { Tgdm } from '../../integrations/tgdm';
import type { Authenticator } from '../auth';
import { readJson } from '../body';
import { limitQuery, parseInput } from '../validate';
import { deviceIdParam, deviceNotFound } from './devices';

export interface MediaRouteDeps {
  readonly db: Db;
  readonly auth: Authenticator;
  readonly tgdm: Tgdm;
  readonly mantis: Mantis;
  /** Base URL of Moth as TGDM and Mantis reach it. */
  readonly mothUrl: string;
}

const uuid = z.uuid();
export const startRecordingBody = z.strictObject({ track: z.string().min(1).max(64) });
export const startStreamBody = z.strictObject({
  track: z.string().min(1).max(64),
  pipeline: z
    .string()
    .min(1)
    .max(100)
    .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only'),
});

/** TGDM or Mantis failing is not the client's fault: 502 with what the service said. */
function upstream(service: 'TGDM' | 'MANTIS', err: unknown): AppError {
  if (err instanceof IntegrationError) {
    return new AppError(502, err.permanent ? `${service}_REJECTED` : `${service}_UNAVAILABLE`, err.message);
  }
  return new AppError(502, `${service}_UNAVAILABLE`, (err as Error).message);
}

export function presentRecording(r: Recording) {
  return {
    id: r.id,
    deviceId: r.deviceId,
    sessionId: r.sessionId,
    track: r.track,
    uri: r.uri,
    policy: r.policy,
    state: r.state,
    tgdmId: r.tgdmId,
    error: r.error,
    createdAt: r.createdAt.toISOString(),
    stoppedAt: r.stoppedAt?.toISOString() ?? null,
  };
}

export function presentStream(s: AnalysisStream) {
  return {
    id: s.id,
    deviceId: s.deviceId,
    track: s.track,
    pipeline: s.pipeline,
    inputUri: s.inputUri,
    outputUri: s.outputUri,
    mantisId: s.mantisId,
    state: s.state,
    error: s.error,
    createdAt: s.createdAt.toISOString(),
    stoppedAt: s.stoppedAt?.toISOString() ?? null,
  };
}

export function mediaRoutes(deps: MediaRouteDeps): Router {
  const { db, auth } = deps;
  const router = new Router();
  const trackUri = (d: Device, track: string) => {
    if (!d.tracks.some((t) => t.name === track)) {
      throw validationFailed([{ field: 'track', message: `the device has no track "${track}"` }]);
    }
    return new URL(trackEndpoint(d.publicChannel, track, 'sub'), deps.mothUrl).toString();
  };
  const liveDevice = async (raw: string | undefined) => {
    const device = await findLiveDevice(db, deviceIdParam(raw));
    if (!device) throw deviceNotFound();
    return device;
  };

  router.get('/devices/:id/recordings', async (ctx) => {
    await auth.operator(ctx);
    const device = await liveDevice(ctx.params.id);
    const { limit } = parseInput(limitQuery, ctx.query);
    ctx.body = { recordings: (await listDeviceRecordings(db, device.id, limit)).map(presentRecording) };
  });

  router.post('/devices/:id/recordings', async (ctx) => {
    await auth.operator(ctx);
    const device = await liveDevice(ctx.params.id);
    const { track } = parseInput(startRecordingBody, await readJson(ctx));
    const uri = trackUri(device, track);
    const id = randomUUID();
    await insertRecording(db, {
      id,
      deviceId: device.id,
      sessionId: null,
      track,
      uri,
      policy: 'MANUAL',
      state: 'STARTING',
    });
    let tgdmId: string;
    try {
      ({ id: tgdmId } = await deps.tgdm.startRecording({
        uri,
        deviceId: device.id,
        track,
        policy: 'MANUAL',
        key: id,
      }));
    } catch (err) {
      await setRecordingState(db, id, ['STARTING'], 'FAILED', { error: (err as Error).message });
      throw upstream('TGDM', err);
    }
    const started = await db.transaction(async (trx) => {
      const r = await setRecordingState(trx, id, ['STARTING'], 'STARTED', { tgdmId });
      await appendEvents(trx, [
        clientEvent('RECORDING_STARTED', device.id, { recordingId: id, track, policy: 'MANUAL' }),
      ]);
      return r!;
    });
    ctx.status = 201;
    ctx.body = presentRecording(started);
  });

  router.post('/recordings/:id/stop', async (ctx) => {
    await auth.operator(ctx);
    const parsed = uuid.safeParse(ctx.params.id);
    const recording = parsed.success ? await findRecording(db, parsed.data) : undefined;
    if (!recording) throw notFound('RECORDING_NOT_FOUND', 'no such recording');
    if (recording.state === 'STOPPED') {
      ctx.body = presentRecording(recording);
      return;
    }
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
    const stopped = await db.transaction(async (trx) => {
      const r = await setRecordingState(trx, recording.id, ['STARTED'], 'STOPPED');
      if (r) {
        await appendEvents(trx, [
          clientEvent('RECORDING_STOPPED', r.deviceId, {
            recordingId: r.id,
            track: r.track,
            policy: r.policy,
          }),
        ]);
      }
      return r ?? (await findRecording(trx, recording.id))!;
    });
    ctx.body = presentRecording(stopped);
  });

  router.get('/devices/:id/analysis-streams', async (ctx) => {
    await auth.operator(ctx);
    const device = await liveDevice(ctx.params.id);
    const { limit } = parseInput(limitQuery, ctx.query);
    ctx.body = { analysisStreams: (await listDeviceStreams(db, device.id, limit)).map(presentStream) };
  });

  router.post('/devices/:id/analysis-streams', async (ctx) => {
    await auth.operator(ctx);
    const device = await liveDevice(ctx.params.id);
    const { track, pipeline } = parseInput(startStreamBody, await readJson(ctx));
    const inputUri = trackUri(device, track);
    const id = randomUUID();
    let started: { id: string; outputUri: string | null };
    try {
      started = await deps.mantis.startStream({ inputUri, deviceId: device.id, track, pipeline, key: id });
    } catch (err) {
      throw upstream('MANTIS', err);
    }
    const stream = await db.transaction(async (trx) => {
      const s = await insertStream(trx, {
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
      return s;
    });
    ctx.status = 201;
    ctx.body = presentStream(stream);
  });

  router.post('/analysis-streams/:id/stop', async (ctx) => {
    await auth.operator(ctx);
    const parsed = uuid.safeParse(ctx.params.id);
    const stream = parsed.success ? await findStream(db, parsed.data) : undefined;
    if (!stream) throw notFound('ANALYSIS_STREAM_NOT_FOUND', 'no such analysis stream');
    if (stream.state !== 'ACTIVE') {
      if (stream.state === 'STOPPED') {
        ctx.body = presentStream(stream);
        return;
      }
      throw conflict('INVALID_STREAM_STATE', `a ${stream.state} stream cannot be stopped`, {
        state: stream.state,
      });
    }
    try {
      await deps.mantis.stopStream(stream.mantisId!);
    } catch (err) {
      throw upstream('MANTIS', err);
    }
    const stopped = await db.transaction(async (trx) => {
      const s = await setStreamState(trx, stream.id, ['ACTIVE'], 'STOPPED');
      if (s) {
        await appendEvents(trx, [
          clientEvent('ANALYSIS_STREAM_STOPPED', s.deviceId, {
            streamId: s.id,
            track: s.track,
            pipeline: s.pipeline,
          }),
        ]);
      }
      return s ?? (await findStream(trx, stream.id))!;
    });
    ctx.body = presentStream(stopped);
  });

  return router;
}
