import { randomUUID } from 'node:crypto';
import { validationFailed } from '../domain/errors';
import { taskEvents } from '../domain/task-events';
import { findLiveDevice } from '../db/devices';
import { recordAudit } from '../db/audit';
import type { Db } from '../db/knex';
import type { Actor } from '../domain/operators';
import { appendEvents } from '../db/outbox';
import { insertTask, type Task } from '../db/tasks';
import { deviceNotFound } from './device-errors';

/**
 * An operator gives a device a task: one of the actions it registered; TASK_REGISTERED goes with it.
 * The device is read in the transaction, its row held until the commit: a delete meanwhile waits, and
 * a device gone is a 404.
 */
export function createCreateTask(deps: { db: Db }) {
  return async (
    actor: Actor,
    deviceId: string,
    body: { action: string; payload: Record<string, unknown> },
  ): Promise<Task> =>
    deps.db.transaction(async (trx) => {
      const device = await findLiveDevice(trx, deviceId, { share: true });
      if (!device) throw deviceNotFound();
      if (!device.actions.includes(body.action)) {
        throw validationFailed([
          { field: 'action', message: `not an action this device registered (${device.actions.join(', ')})` },
        ]);
      }
      const created = await insertTask(trx, { id: randomUUID(), deviceId: device.id, ...body });
      await appendEvents(trx, taskEvents(created, device.name));
      await recordAudit(trx, actor, [
        { action: 'task.created', target: device.id, after: { taskId: created.id, action: body.action } },
      ]);
      return created;
    });
}
