import type { Caller } from '../domain/caller';
import { AppError, conflict, forbidden, notFound } from '../domain/errors';
import { nextStatus, type TaskReport } from '../domain/task';
import { recordAudit } from '../db/audit';
import type { Db } from '../db/knex';
import { lockTask, type Task } from '../db/tasks';
import { moveTask } from './move-task';

export const taskNotFound = () => notFound('TASK_NOT_FOUND', 'no such task');

/**
 * A report on a task: the executing device starts, completes, rejects or aborts it; an operator may
 * only abort it. The status moves as `nextStatus` allows, with its events, or the report is refused.
 */
export function createReportTask(deps: { db: Db }) {
  return async (
    caller: Caller,
    id: string,
    report: TaskReport,
    extra: { reason?: string; failPoint?: unknown } = {},
  ): Promise<Task> =>
    deps.db.transaction(async (trx) => {
      const current = await lockTask(trx, id);
      if (!current) throw taskNotFound();
      if (caller.kind === 'device' && caller.deviceId !== current.deviceId) {
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
          ? extra.reason || (caller.kind === 'operator' ? 'OPERATOR_ABORT' : 'DEVICE_ABORT')
          : undefined;
      const moved = await moveTask(trx, id, [current.status], to, {
        ...(reason ? { reason } : {}),
        ...(extra.failPoint !== undefined ? { failPoint: extra.failPoint } : {}),
      });
      if (!moved) throw new AppError(409, 'INVALID_TASK_TRANSITION', 'the task changed meanwhile');
      if (caller.kind === 'operator')
        await recordAudit(trx, caller, [
          {
            action: 'task.aborted',
            target: current.deviceId,
            before: { taskId: id, status: current.status },
          },
        ]);
      return moved;
    });
}
