import type { Logger } from '../logger';
import { setBounded } from './bounded-map';

/**
 * Why a robot's heartbeat on its own bus was refused: a token the service does not know (never
 * issued, or rotated or revoked since), another device's token, or its plain token once it has
 * spoken protocol v2.
 */
export type RefusalCode = 'UNKNOWN_TOKEN' | 'WRONG_BUS' | 'DOWNGRADE';

export interface Refusal {
  /** The device whose bus it was heard on. */
  readonly deviceId: string;
  readonly code: RefusalCode;
}

/** At most one notice per device in this window, across gateways. */
export const REFUSAL_NOTICE_WINDOW_MS = 60_000;
/** Devices this gateway remembers having told, before it asks Redis again. */
const REMEMBERED = 10_000;

/**
 * Tells a robot why its heartbeats are refused, and its operators: a signed `REFUSED` frame on the
 * robot's own bus (`{type, code, deviceId, occurredAt, kid, sig}`: a robot whose token was rotated
 * can no longer ask the API, but it can still hear its bus) and a `DEVICE_AUTH_FAILED` event. At most
 * one of each per device per minute, whatever the robot sends and however many gateways hear it. The
 * frame says nothing the sender did not know: not whose token it was, only that it does not count
 * here.
 */
export function createRefusalNotices(deps: {
  /** True for the one process that may tell this device now (once per window). */
  claim: (deviceId: string) => Promise<boolean>;
  sign: (body: Record<string, unknown>) => Promise<unknown>;
  sendToDevice: (deviceId: string, body: unknown) => Promise<void>;
  /** Records the operators' event. */
  record: (refusal: Refusal) => Promise<void>;
  logger: Logger;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  const told = new Map<string, number>();

  async function tell(r: Refusal): Promise<void> {
    if (!(await deps.claim(r.deviceId))) return;
    const occurredAt = new Date(now()).toISOString();
    await deps.record(r);
    await deps.sendToDevice(r.deviceId, await deps.sign({ type: 'REFUSED', ...r, occurredAt }));
  }

  return {
    /** Refusals heard on devices' own buses; each device told at most once a window. */
    refused(refusals: readonly Refusal[]): void {
      for (const r of refusals) {
        const last = told.get(r.deviceId);
        if (last !== undefined && now() - last < REFUSAL_NOTICE_WINDOW_MS) continue;
        setBounded(told, REMEMBERED, r.deviceId, now());
        tell(r).catch((err: Error) =>
          deps.logger.warn(
            { err: err.message, deviceId: r.deviceId },
            'could not tell a device why it was refused',
          ),
        );
      }
    },
  };
}
export type RefusalNotices = ReturnType<typeof createRefusalNotices>;
