import Router from '@koa/router';
import { z } from 'zod';
import type { ApiOperations } from '../../operations';
import type { AnalysisStream, Recording } from '../../operations/queries';
import type { Authenticator } from '../auth';
import { readJson } from '../body';
import { limitQuery, parseInput } from '../validate';
import { deviceIdParam, deviceNotFound } from './devices';

export interface MediaRouteDeps {
  readonly auth: Authenticator;
  readonly ops: Pick<
    ApiOperations,
    'queries' | 'startRecording' | 'stopRecording' | 'startAnalysisStream' | 'stopAnalysisStreams'
  >;
}

export const startRecordingBody = z.strictObject({ track: z.string().min(1).max(64) });
export const startStreamBody = z.strictObject({
  track: z.string().min(1).max(64),
  pipeline: z
    .string()
    .min(1)
    .max(100)
    .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only'),
});

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
  const { auth, ops } = deps;
  const router = new Router();
  const liveDevice = async (raw: string | undefined) => {
    const device = await ops.queries.liveDevice(deviceIdParam(raw));
    if (!device) throw deviceNotFound();
    return device;
  };

  router.get('/devices/:id/recordings', async (ctx) => {
    await auth.operator(ctx);
    const device = await liveDevice(ctx.params.id);
    const { limit } = parseInput(limitQuery, ctx.query);
    ctx.body = { recordings: (await ops.queries.recordings(device.id, limit)).map(presentRecording) };
  });

  router.post('/devices/:id/recordings', async (ctx) => {
    await auth.operator(ctx);
    const deviceId = deviceIdParam(ctx.params.id);
    const { track } = parseInput(startRecordingBody, await readJson(ctx));
    ctx.status = 201;
    ctx.body = presentRecording(await ops.startRecording.manual(deviceId, track));
  });

  router.post('/recordings/:id/stop', async (ctx) => {
    await auth.operator(ctx);
    ctx.body = presentRecording(await ops.stopRecording.byId(ctx.params.id));
  });

  router.get('/devices/:id/analysis-streams', async (ctx) => {
    await auth.operator(ctx);
    const device = await liveDevice(ctx.params.id);
    const { limit } = parseInput(limitQuery, ctx.query);
    ctx.body = { analysisStreams: (await ops.queries.analysisStreams(device.id, limit)).map(presentStream) };
  });

  router.post('/devices/:id/analysis-streams', async (ctx) => {
    await auth.operator(ctx);
    const deviceId = deviceIdParam(ctx.params.id);
    const { track, pipeline } = parseInput(startStreamBody, await readJson(ctx));
    ctx.status = 201;
    ctx.body = presentStream(await ops.startAnalysisStream(deviceId, track, pipeline));
  });

  router.post('/analysis-streams/:id/stop', async (ctx) => {
    await auth.operator(ctx);
    ctx.body = presentStream(await ops.stopAnalysisStreams.byId(ctx.params.id));
  });

  return router;
}
