import type { TaskStatus } from '../domain/task';
import { taskEvents } from '../domain/task-events';
import { deviceName } from '../db/devices';
import type { Tx } from '../db/knex';
import { appendEvents } from '../db/outbox';
import { transitionTask, type Task } from '../db/tasks';

/**
 * A task's compare-and-set from one of `from` to `to`, with its events (to clients, and to the robot
 * for TASK_ABORTED) in the same transaction. Undefined when the task was no longer in `from`.
 */
export async function moveTask(
  trx: Tx,
  id: string,
  from: readonly TaskStatus[],
  to: TaskStatus,
  extra: { reason?: string; failPoint?: unknown } = {},
): Promise<Task | undefined> {
  const moved = await transitionTask(trx, id, from, to, extra);
  if (moved) await appendEvents(trx, taskEvents(moved, await deviceName(trx, moved.deviceId)));
  return moved;
}
