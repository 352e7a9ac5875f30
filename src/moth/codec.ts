/** What the gateway reads from the device-management channel. */
export type Inbound =
  | { kind: 'heartbeat'; token: string; round?: number }
  | { kind: 'ignored'; type: string }
  | { kind: 'malformed'; reason: string };

/** Frames larger than this are not parsed at all. */
export const MAX_INBOUND_FRAME_BYTES = 4096;
const MAX_TOKEN_LENGTH = 512;

/**
 * Decodes one frame. Accepts a HEARTBEAT as binary or text, with only `type` and `token` (as deployed
 * robots send it) and an optional integer `round`. Never throws.
 */
export function decodeInbound(data: Buffer): Inbound {
  if (data.length > MAX_INBOUND_FRAME_BYTES) return { kind: 'malformed', reason: 'too large' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch {
    return { kind: 'malformed', reason: 'not JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { kind: 'malformed', reason: 'not an object' };
  }
  const msg = parsed as Record<string, unknown>;
  if (typeof msg.type !== 'string') return { kind: 'malformed', reason: 'no type' };
  if (msg.type !== 'HEARTBEAT') return { kind: 'ignored', type: msg.type.slice(0, 40) };
  const { token, round } = msg;
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
    return { kind: 'malformed', reason: 'bad token' };
  }
  if (round === undefined || round === null) return { kind: 'heartbeat', token };
  if (typeof round !== 'number' || !Number.isSafeInteger(round) || round < 0) {
    return { kind: 'malformed', reason: 'bad round' };
  }
  return { kind: 'heartbeat', token, round };
}

export interface HealthcheckMessage {
  readonly type: 'HEALTHCHECK';
  readonly round: number;
  readonly intervalSeconds: number;
  readonly issuedAt: string;
}

export function healthcheck(round: number, intervalSeconds: number, issuedAt: Date): HealthcheckMessage {
  return { type: 'HEALTHCHECK', round, intervalSeconds, issuedAt: issuedAt.toISOString() };
}
