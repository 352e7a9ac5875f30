import { z } from 'zod';

export const TASK_STATUSES = ['PENDING', 'IN_PROGRESS', 'COMPLETED', 'REJECTED', 'ABORTED'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export type TaskReport = 'start' | 'complete' | 'reject' | 'abort';

/**
 * The task state machine. A device starts a pending task and completes a started one; it may refuse
 * (reject) only a task it has not started; a task that is pending or in progress may be aborted
 * (by the device, the operator, or a disconnect). Finished tasks never change again.
 */
const TRANSITIONS: Record<TaskReport, { from: readonly TaskStatus[]; to: TaskStatus }> = {
  start: { from: ['PENDING'], to: 'IN_PROGRESS' },
  complete: { from: ['IN_PROGRESS'], to: 'COMPLETED' },
  reject: { from: ['PENDING'], to: 'REJECTED' },
  abort: { from: ['PENDING', 'IN_PROGRESS'], to: 'ABORTED' },
};

/** The status a report leads to, or null when it is not allowed from `current`. */
export function nextStatus(current: TaskStatus, report: TaskReport): TaskStatus | null {
  const t = TRANSITIONS[report];
  return t.from.includes(current) ? t.to : null;
}

export const isOpen = (s: TaskStatus) => s === 'PENDING' || s === 'IN_PROGRESS';

export const TASK_EVENT: Record<TaskStatus, string> = {
  PENDING: 'TASK_REGISTERED',
  IN_PROGRESS: 'TASK_STARTED',
  COMPLETED: 'TASK_COMPLETED',
  REJECTED: 'TASK_REJECTED',
  ABORTED: 'TASK_ABORTED',
};

export const createTaskSchema = z.strictObject({
  action: z.string().min(1).max(100),
  payload: z.record(z.string(), z.unknown()).default({}),
});

export const abortTaskSchema = z
  .strictObject({
    failPoint: z.union([z.string().max(1000), z.record(z.string(), z.unknown())]).optional(),
    reason: z.string().max(500).optional(),
  })
  .default({});

export const ABORT_REASON_DEVICE_DISCONNECTED = 'DEVICE_DISCONNECTED';
