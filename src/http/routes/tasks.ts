import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { forbidden } from '../../domain/errors';
import { abortTaskSchema, createTaskSchema, type TaskReport } from '../../domain/task';
import type { ApiOperations } from '../../operations';
import type { Task } from '../../operations/queries';
import { taskNotFound } from '../../operations/report-task';
import type { Authenticator, Caller } from '../auth';
import { readJson } from '../body';
import { limitQuery, parseInput } from '../validate';
import { deviceIdParam, deviceNotFound } from './devices';

const uuid = z.uuid();
export const emptyReportBody = z.strictObject({}).default({});

export function presentTask(t: Task) {
  return {
    id: t.id,
    deviceId: t.deviceId,
    action: t.action,
    payload: t.payload,
    status: t.status,
    reason: t.reason,
    failPoint: t.failPoint ?? null,
    createdAt: t.createdAt.toISOString(),
    updatedAt: t.updatedAt.toISOString(),
    startedAt: t.startedAt?.toISOString() ?? null,
    finishedAt: t.finishedAt?.toISOString() ?? null,
  };
}

/** A report body is optional: a device may POST with no body at all. */
async function optionalJson(ctx: Context): Promise<unknown> {
  const declared = ctx.request.length;
  const chunked = ctx.get('transfer-encoding') !== '';
  if (!chunked && (declared === undefined || declared === 0)) return undefined;
  return readJson(ctx);
}

function canRead(caller: Caller, deviceId: string) {
  if (caller.kind === 'device' && caller.deviceId !== deviceId)
    throw forbidden('a device may read only its own tasks');
}

export function taskRoutes(deps: {
  auth: Authenticator;
  ops: Pick<ApiOperations, 'queries' | 'createTask' | 'reportTask'>;
}): Router {
  const { auth, ops } = deps;
  const router = new Router();

  router.post('/devices/:id/tasks', async (ctx) => {
    const actor = await auth.operator(ctx);
    const deviceId = deviceIdParam(ctx.params.id);
    const body = parseInput(createTaskSchema, await readJson(ctx));
    const task = await ops.createTask(actor, deviceId, body);
    ctx.status = 201;
    ctx.set('Location', `/tasks/${task.id}`);
    ctx.body = presentTask(task);
  });

  router.get('/devices/:id/tasks', async (ctx) => {
    const caller = await auth.caller(ctx);
    const deviceId = deviceIdParam(ctx.params.id);
    canRead(caller, deviceId);
    const { limit } = parseInput(limitQuery, ctx.query);
    if (!(await ops.queries.liveDevice(deviceId))) throw deviceNotFound();
    ctx.body = { tasks: (await ops.queries.tasks(deviceId, limit)).map(presentTask) };
  });

  router.get('/tasks/:id', async (ctx) => {
    const caller = await auth.caller(ctx);
    const id = uuid.safeParse(ctx.params.id);
    const task = id.success ? await ops.queries.task(id.data) : undefined;
    if (!task) throw taskNotFound();
    canRead(caller, task.deviceId);
    ctx.body = presentTask(task);
  });

  const reports: TaskReport[] = ['start', 'complete', 'reject', 'abort'];
  for (const report of reports)
    router.post(`/tasks/:id/${report}`, async (ctx) => {
      const caller = await auth.caller(ctx);
      const id = uuid.safeParse(ctx.params.id);
      if (!id.success) throw taskNotFound();
      const raw = await optionalJson(ctx);
      const extra =
        report === 'abort' ? parseInput(abortTaskSchema, raw) : (parseInput(emptyReportBody, raw), {});
      ctx.body = presentTask(await ops.reportTask(caller, id.data, report, extra));
    });

  return router;
}
