import { randomUUID } from 'node:crypto';
import { clientEvent, type OutgoingEvent } from './events';
import { TASK_EVENT, type TaskStatus } from './task';

export interface TaskFacts {
  readonly id: string;
  readonly deviceId: string;
  readonly action: string;
  readonly payload: Record<string, unknown>;
  readonly status: TaskStatus;
  readonly reason?: string | null;
}

/**
 * The events of a task reaching `task.status`: always one on the client channel; TASK_REGISTERED and
 * TASK_ABORTED also go to the device-management channel, with the field names deployed robots read.
 */
export function taskEvents(task: TaskFacts, deviceName: string, now = new Date()): OutgoingEvent[] {
  const type = TASK_EVENT[task.status];
  const client = clientEvent(
    type as Parameters<typeof clientEvent>[0],
    task.deviceId,
    {
      taskId: task.id,
      action: task.action,
      status: task.status,
      ...(task.reason ? { reason: task.reason } : {}),
    },
    now,
  );
  if (task.status !== 'PENDING' && task.status !== 'ABORTED') return [client];
  const robot: OutgoingEvent = {
    channel: 'device',
    event: {
      ...client.event,
      eventId: randomUUID(),
      task_id: task.id,
      action_name: task.action,
      device_id: task.deviceId,
      device_name: deviceName,
      payload: task.payload,
    },
  };
  return [client, robot];
}
