import { randomUUID } from 'node:crypto';

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

/** Where an event goes: the client event channel, or the device-management channel robots listen on. */
export type EventChannel = 'client' | 'device';

/** A flat JSON event. Never carries a token or a secret. */
export interface PlatformEvent {
  readonly type: string;
  readonly eventId: string;
  readonly occurredAt: string;
  readonly deviceId: string | null;
  readonly [field: string]: unknown;
}

/**
 * An event as it is served, signed: its body with its place, the stream it belongs to (`client`, or
 * `device:<id>` for a robot's commands) and its number there. The signature covers both, so a
 * client event cannot pass for a command on a robot's bus, nor a command for another robot's.
 */
export type NumberedEvent = PlatformEvent & { readonly stream: string; readonly seq: number };

/** Places an event in its stream. */
export const numbered = (body: PlatformEvent, stream: string, seq: number): NumberedEvent => ({
  ...body,
  stream,
  seq,
});

export interface OutgoingEvent {
  readonly channel: EventChannel;
  readonly event: PlatformEvent;
}

/** Builds an event for the client channel, with a fresh `eventId`. */
export function clientEvent(
  type: EventType,
  deviceId: string | null,
  fields: Record<string, unknown> = {},
  now: Date = new Date(),
): OutgoingEvent {
  return {
    channel: 'client',
    event: { type, eventId: randomUUID(), occurredAt: now.toISOString(), deviceId, ...fields },
  };
}

/** A recording's start or stop, for the client channel: the one shape both are told in. */
export const recordingEvent = (
  type: 'RECORDING_STARTED' | 'RECORDING_STOPPED',
  r: { id: string; deviceId: string; track: string; policy: string; sessionId: string | null },
): OutgoingEvent =>
  clientEvent(type, r.deviceId, {
    recordingId: r.id,
    track: r.track,
    policy: r.policy,
    sessionId: r.sessionId,
  });
