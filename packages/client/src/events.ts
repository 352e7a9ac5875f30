/**
 * The events rollcall publishes, as `GET /events`, `GET /events/stream` and the Moth client channel
 * carry them. The list and the fields are checked against the service's OpenAPI document by a test.
 */
export const EVENT_TYPES = [
  'DEVICE_REGISTERED',
  'DEVICE_CONNECTED',
  'DEVICE_DISCONNECTED',
  'DEVICE_DELETED',
  'DEVICE_TOKEN_ROTATED',
  'TASK_REGISTERED',
  'TASK_STARTED',
  'TASK_COMPLETED',
  'TASK_REJECTED',
  'TASK_ABORTED',
  'RECORDING_STARTED',
  'RECORDING_STOPPED',
  'ANALYSIS_STREAM_STARTED',
  'ANALYSIS_STREAM_STOPPED',
  'HEALTHCHECK_ROUND_HELD',
  'DEVICE_FLAPPING',
  'DEVICE_FLAPPING_ENDED',
  'DEVICE_BUS_UNSTABLE',
  'DEVICE_BUS_STABLE',
  'DEVICE_LINK_DEGRADED',
  'DEVICE_LINK_RECOVERED',
  'DEVICE_AUTH_FAILED',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** What every event carries: its place in its stream and its signature. */
export interface EventBase<T extends EventType = EventType> {
  readonly type: T;
  readonly eventId: string;
  /** ISO-8601. */
  readonly occurredAt: string;
  readonly deviceId: string | null;
  /** `client`, or `device:<id>` for a robot's commands. */
  readonly stream: string;
  /** Its number in its stream: 1, 2, 3, ... with no gap. */
  readonly seq: number;
  readonly kid: string;
  readonly sig: string;
}

/** Why a session ended. */
export type DisconnectReason = 'MISSED_HEARTBEATS' | 'PLANNED' | 'DELETED' | 'MAINTENANCE';

interface Fields {
  DEVICE_REGISTERED: { readonly name: string };
  DEVICE_CONNECTED: { readonly sessionId: string; readonly round: number };
  DEVICE_DISCONNECTED: {
    readonly reason: DisconnectReason;
    readonly missedRounds: number;
    readonly sessionId: string;
  };
  DEVICE_DELETED: { readonly name: string };
  DEVICE_AUTH_FAILED: { readonly code: 'UNKNOWN_TOKEN' | 'WRONG_BUS' | 'DOWNGRADE' };
  DEVICE_LINK_DEGRADED: LinkFields;
  DEVICE_LINK_RECOVERED: LinkFields;
  TASK_REGISTERED: TaskFields;
  TASK_STARTED: TaskFields;
  TASK_COMPLETED: TaskFields;
  TASK_REJECTED: TaskFields;
  TASK_ABORTED: TaskFields;
}

/** A robot's link figures when its state changed, and the limits it was held to. */
interface LinkFields {
  readonly p95Ms: number | null;
  readonly missShare: number;
  readonly limits: { readonly maxP95Ms: number; readonly maxMissShare: number };
  readonly rounds: number;
}

interface TaskFields {
  readonly taskId: string;
  readonly action: string;
  readonly status: string;
  readonly reason?: string;
}

/** One event, its fields typed by its `type` where they are fixed (others stay open). */
export type RollcallEvent = {
  [T in EventType]: EventBase<T> &
    (T extends keyof Fields ? Fields[T] : unknown) & { readonly [field: string]: unknown };
}[EventType];

/** The event of that type (`EventOf<'DEVICE_CONNECTED'>`). */
export type EventOf<T extends EventType> = Extract<RollcallEvent, { type: T }>;
