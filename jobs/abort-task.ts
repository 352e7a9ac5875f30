import { ABORT_REASON_DEVICE_DISCONNECTED } from '../src/domain/task';
import { taskEvents } from '../src/domain/task-events';
import { finishEffect, lockEffect, sessionEnd } from '../src/db/effects';
import type { Db } from '../src/db/knex';
import { appendEvents } from '../src/db/outbox';
import { lockLatestOpenTask, transitionTask } from '../src/db/tasks';
import type { EffectDefinition, EffectJobData } from '../src/effects/run-effect';

export const name = 'abort-task';

/**
 * Aborts the disconnected device's latest IN_PROGRESS task (else its latest PENDING one) created
 * before the session ended, and publishes TASK_ABORTED to clients and to the device channel, all in
 * one transaction with the effect's own row: a duplicate run finds the effect done.
 */
export function createAbortTask(deps: { db: Db }): EffectDefinition {
  return {
    kind: 'abort-task',
    async run({ sessionId, deviceId }: EffectJobData) {
      await deps.db.transaction(async (trx) => {
        const effect = await lockEffect(trx, sessionId, 'abort-task');
        if (effect?.status !== 'PENDING') return;
        const end = await sessionEnd(trx, sessionId);
        const task = await lockLatestOpenTask(trx, deviceId, end?.endedAt ?? new Date());
        if (task) {
          const aborted = await transitionTask(trx, task.id, ['PENDING', 'IN_PROGRESS'], 'ABORTED', {
            reason: ABORT_REASON_DEVICE_DISCONNECTED,
          });
          const device = await trx('devices').where({ id: deviceId }).first<{ name: string }>('name');
          if (aborted) await appendEvents(trx, taskEvents(aborted, device?.name ?? ''));
        }
        await finishEffect(trx, sessionId, 'abort-task', 'DONE');
      });
    },
  };
}
