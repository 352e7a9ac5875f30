import Router from '@koa/router';
import type { Context } from 'koa';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { AppError, conflict, forbidden, notFound, validationFailed } from '../../domain/errors';
import { abortTaskSchema, createTaskSchema, nextStatus, type TaskReport } from '../../domain/task';
import { taskEvents } from '../../domain/task-events';
import { findLiveDevice } from '../../db/devices';
import type { Db } from '../../db/knex';
import { appendEvents } from '../../db/outbox';
import { findTask, insertTask, listDeviceTasks, transitionTask, type Task } from '../../db/tasks';
import type { Authenticator, Caller } from '../auth';
import { readJson } from '../body';
import { limitQuery, parseInput } from '../validate';
import { deviceIdParam, deviceNotFound } from './devices';

const uuid = z.uuid();
const taskNotFound = () => notFound('TASK_NOT_FOUND', 'no such task');
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

export function taskRoutes(deps: { db: Db; auth: Authenticator }): Router {
  const { db, auth } = deps;
  const router = new Router();

  router.post('/devices/:id/tasks', async (ctx) => {
    await auth.operator(ctx);
    const deviceId = deviceIdParam(ctx.params.id);
    const body = parseInput(createTaskSchema, await readJson(ctx));
    const device = await findLiveDevice(db, deviceId);
    if (!device) throw deviceNotFound();
    if (!device.actions.includes(body.action)) {
      throw validationFailed([
        { field: 'action', message: `not an action this device registered (${device.actions.join(', ')})` },
      ]);
    }
    const task = await db.transaction(async (trx) => {
      const created = await insertTask(trx, {
        id: randomUUID(),
        deviceId,
        action: body.action,
        payload: body.payload,
      });
      await appendEvents(trx, taskEvents(created, device.name));
      return created;
    });
    ctx.status = 201;
    ctx.set('Location', `/tasks/${task.id}`);
    ctx.body = presentTask(task);
  });

  router.get('/devices/:id/tasks', async (ctx) => {
    const caller = await auth.caller(ctx);
    const deviceId = deviceIdParam(ctx.params.id);
    canRead(caller, deviceId);
    const { limit } = parseInput(limitQuery, ctx.query);
    if (!(await findLiveDevice(db, deviceId))) throw deviceNotFound();
    ctx.body = { tasks: (await listDeviceTasks(db, deviceId, limit)).map(presentTask) };
  });

  router.get('/tasks/:id', async (ctx) => {
    const caller = await auth.caller(ctx);
    const id = uuid.safeParse(ctx.params.id);
    const task = id.success ? await findTask(db, id.data) : undefined;
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
      const task = await db.transaction(async (trx) => {
        const current = await trx('tasks')
          .where({ id: id.data })
          .forUpdate()
          .first<{ device_id: string; status: Task['status'] } | undefined>('device_id', 'status');
        if (!current) throw taskNotFound();
        if (caller.kind === 'device' && caller.deviceId !== current.device_id) {
          throw forbidden('only the executing device reports on a task');
        }
        if (caller.kind === 'operator' && report !== 'abort')
          throw forbidden('an operator may only abort a task');
        const to = nextStatus(current.status, report);
        if (!to) {
          throw conflict('INVALID_TASK_TRANSITION', `cannot ${report} a task that is ${current.status}`, {
            status: current.status,
            report,
          });
        }
        const reason =
          report === 'abort'
            ? ('reason' in extra && extra.reason) ||
              (caller.kind === 'operator' ? 'OPERATOR_ABORT' : 'DEVICE_ABORT')
            : undefined;
        const changed = await transitionTask(trx, id.data, [current.status], to, {
          ...(reason ? { reason } : {}),
          ...('failPoint' in extra && extra.failPoint !== undefined ? { failPoint: extra.failPoint } : {}),
        });
        if (!changed) throw new AppError(409, 'INVALID_TASK_TRANSITION', 'the task changed meanwhile');
        const device = await trx('devices').where({ id: changed.deviceId }).first<{ name: string }>('name');
        await appendEvents(trx, taskEvents(changed, device?.name ?? ''));
        return changed;
      });
      ctx.body = presentTask(task);
    });

  return router;
}
