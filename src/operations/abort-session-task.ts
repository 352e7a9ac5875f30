import { ABORT_REASON_DEVICE_DISCONNECTED } from '../domain/task';
import { sessionEnd } from '../db/effects';
import type { Tx } from '../db/knex';
import { lockLatestOpenTask } from '../db/tasks';
import { moveTask } from './move-task';

/**
 * The disconnect effect on tasks: aborts the device's latest IN_PROGRESS task (else its latest
 * PENDING one) created before the session ended, with TASK_ABORTED to clients and to the robot. Runs
 * in the transaction that ends the effect, so a duplicate run finds it done and aborts nothing more.
 */
export async function abortSessionTask(trx: Tx, sessionId: string, deviceId: string): Promise<void> {
  const end = await sessionEnd(trx, sessionId);
  const task = await lockLatestOpenTask(trx, deviceId, end?.endedAt ?? new Date());
  if (task) {
    await moveTask(trx, task.id, ['PENDING', 'IN_PROGRESS'], 'ABORTED', {
      reason: ABORT_REASON_DEVICE_DISCONNECTED,
    });
  }
}
