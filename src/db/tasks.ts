import type { TaskStatus } from '../domain/task';
import type { Queryable } from './knex';

export interface Task {
  readonly id: string;
  readonly deviceId: string;
  readonly action: string;
  readonly payload: Record<string, unknown>;
  readonly status: TaskStatus;
  readonly reason: string | null;
  readonly failPoint: unknown;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
}

interface TaskRow {
  id: string;
  device_id: string;
  action: string;
  payload: Record<string, unknown>;
  status: TaskStatus;
  reason: string | null;
  fail_point: unknown;
  created_at: Date;
  updated_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

const toTask = (r: TaskRow): Task => ({
  id: r.id,
  deviceId: r.device_id,
  action: r.action,
  payload: r.payload,
  status: r.status,
  reason: r.reason,
  failPoint: r.fail_point,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
});

export async function insertTask(
  q: Queryable,
  t: { id: string; deviceId: string; action: string; payload: Record<string, unknown> },
): Promise<Task> {
  const [row] = await q('tasks')
    .insert({ id: t.id, device_id: t.deviceId, action: t.action, payload: JSON.stringify(t.payload) })
    .returning<TaskRow[]>('*');
  return toTask(row!);
}

export async function findTask(q: Queryable, id: string): Promise<Task | undefined> {
  const row = await q('tasks').where({ id }).first<TaskRow | undefined>();
  return row && toTask(row);
}

export async function listDeviceTasks(q: Queryable, deviceId: string, limit: number): Promise<Task[]> {
  const rows = await q('tasks')
    .where({ device_id: deviceId })
    .orderBy('created_at', 'desc')
    .limit(limit)
    .select<TaskRow[]>('*');
  return rows.map(toTask);
}

/** Compare-and-set of a task's status: applies only while the task is in one of `from`. */
export async function transitionTask(
  q: Queryable,
  id: string,
  from: readonly TaskStatus[],
  to: TaskStatus,
  extra: { reason?: string | null; failPoint?: unknown } = {},
): Promise<Task | undefined> {
  const finished = to === 'COMPLETED' || to === 'REJECTED' || to === 'ABORTED';
  const [row] = await q('tasks')
    .update({
      status: to,
      updated_at: q.fn.now(),
      ...(to === 'IN_PROGRESS' ? { started_at: q.fn.now() } : {}),
      ...(finished ? { finished_at: q.fn.now() } : {}),
      ...(extra.reason !== undefined ? { reason: extra.reason } : {}),
      ...(extra.failPoint !== undefined ? { fail_point: JSON.stringify(extra.failPoint) } : {}),
    })
    .where({ id })
    .whereIn('status', from as TaskStatus[])
    .returning<TaskRow[]>('*');
  return row && toTask(row);
}

/**
 * The task a disconnect aborts: the device's latest IN_PROGRESS task, else its latest PENDING one,
 * among those created before `before` (a task created in a newer session is not this session's).
 * Locked for the rest of the transaction.
 */
export async function lockLatestOpenTask(
  q: Queryable,
  deviceId: string,
  before: Date,
): Promise<Task | undefined> {
  const row = await q('tasks')
    .where({ device_id: deviceId })
    .whereIn('status', ['IN_PROGRESS', 'PENDING'])
    .where('created_at', '<=', before)
    .orderByRaw(`CASE status WHEN 'IN_PROGRESS' THEN 0 ELSE 1 END, created_at DESC`)
    .forUpdate()
    .first<TaskRow | undefined>();
  return row && toTask(row);
}

/** A task's device and status, locked for the rest of the transaction. */
export async function lockTask(
  q: Queryable,
  id: string,
): Promise<{ deviceId: string; status: TaskStatus } | undefined> {
  const row = await q('tasks')
    .where({ id })
    .forUpdate()
    .first<{ device_id: string; status: TaskStatus } | undefined>('device_id', 'status');
  return row && { deviceId: row.device_id, status: row.status };
}
