/** What the gateway reads from the device-management channel. */
export type Inbound =
  | { kind: 'heartbeat'; token: string; round?: number }
  /** Protocol v2: a proof for `round` instead of the token (see domain/proofs). */
  | { kind: 'proof'; deviceId: string; round: number; proof: string }
  /** A robot leaving on purpose: with its token, or (v2) a goodbye proof for the round. */
  | { kind: 'goodbye'; token: string }
  | { kind: 'goodbye'; proof: { deviceId: string; round: number; proof: string } }
  | { kind: 'ignored'; type: string }
  | { kind: 'malformed'; reason: string };

/** Frames larger than this are not parsed at all. */
export const MAX_INBOUND_FRAME_BYTES = 4096;
const MAX_TOKEN_LENGTH = 512;

const CANONICAL_PREFIX = Buffer.from('{"type":"HEARTBEAT","token":"');
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * The token of a frame that is exactly `{"type":"HEARTBEAT","token":"<token>"}` with a base64url
 * token, as deployed robots send it, read without JSON.parse (it decodes to the same token). Any other
 * frame, however valid, gives undefined and takes the general path.
 */
function canonicalHeartbeatToken(data: Buffer): string | undefined {
  const start = CANONICAL_PREFIX.length;
  const end = data.length - 2;
  if (end <= start || end - start > MAX_TOKEN_LENGTH) return undefined;
  if (data[end] !== 0x22 || data[end + 1] !== 0x7d) return undefined; // "}
  if (data.compare(CANONICAL_PREFIX, 0, start, 0, start) !== 0) return undefined;
  // A compiled regular expression checks the characters faster than a loop over the bytes.
  const token = data.toString('latin1', start, end);
  return BASE64URL.test(token) ? token : undefined;
}

/**
 * Decodes one frame. Accepts a HEARTBEAT (or a CONNECT, which counts as one) as binary or text, with
 * only `type` and `token` (as deployed robots send it) and an optional integer `round`. Never throws.
 */
export function decodeInbound(data: Buffer): Inbound {
  if (data.length > MAX_INBOUND_FRAME_BYTES) return { kind: 'malformed', reason: 'too large' };
  // The hot path: nearly every frame at fleet scale is this one.
  const canonical = canonicalHeartbeatToken(data);
  if (canonical !== undefined) return { kind: 'heartbeat', token: canonical };
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
  if (msg.type === 'GOODBYE') return decodeGoodbye(msg);
  // TeamGRIT's ICRA-2025 client announces itself with CONNECT before its first HEARTBEAT.
  if (msg.type !== 'HEARTBEAT' && msg.type !== 'CONNECT')
    return { kind: 'ignored', type: msg.type.slice(0, 40) };
  const { token, round } = msg;
  if (msg.proof !== undefined) return decodeProof(msg);
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
    return { kind: 'malformed', reason: 'bad token' };
  }
  if (round === undefined || round === null) return { kind: 'heartbeat', token };
  if (typeof round !== 'number' || !Number.isSafeInteger(round) || round < 0) {
    return { kind: 'malformed', reason: 'bad round' };
  }
  return { kind: 'heartbeat', token, round };
}

/** `{"type":"HEARTBEAT","deviceId","round","proof"}`: every field required, no token beside it. */
function decodeProof(msg: Record<string, unknown>): Inbound {
  const { deviceId, round, proof } = msg;
  if (msg.token !== undefined) return { kind: 'malformed', reason: 'token beside a proof' };
  if (typeof deviceId !== 'string' || !UUID.test(deviceId))
    return { kind: 'malformed', reason: 'bad deviceId' };
  if (typeof round !== 'number' || !Number.isSafeInteger(round) || round < 0)
    return { kind: 'malformed', reason: 'bad round' };
  if (typeof proof !== 'string' || proof.length !== PROOF_LENGTH || !BASE64URL.test(proof))
    return { kind: 'malformed', reason: 'bad proof' };
  return { kind: 'proof', deviceId, round, proof };
}

/** `{"type":"GOODBYE","token"}`, or the v2 form with `deviceId`, `round` and a goodbye proof. */
function decodeGoodbye(msg: Record<string, unknown>): Inbound {
  if (msg.proof !== undefined) {
    const p = decodeProof(msg);
    return p.kind === 'proof'
      ? { kind: 'goodbye', proof: { deviceId: p.deviceId, round: p.round, proof: p.proof } }
      : p;
  }
  const { token } = msg;
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH)
    return { kind: 'malformed', reason: 'bad token' };
  return { kind: 'goodbye', token };
}

/** base64url of a SHA-256 HMAC, unpadded. */
const PROOF_LENGTH = 43;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface HealthcheckMessage {
  readonly type: 'HEALTHCHECK';
  readonly round: number;
  readonly intervalSeconds: number;
  readonly issuedAt: string;
  /** Fresh per round: what a v2 device proves its token against. */
  readonly nonce?: string;
}

export function healthcheck(
  round: number,
  intervalSeconds: number,
  issuedAt: Date,
  nonce?: string,
): HealthcheckMessage {
  return {
    type: 'HEALTHCHECK',
    round,
    intervalSeconds,
    issuedAt: issuedAt.toISOString(),
    ...(nonce === undefined ? {} : { nonce }),
  };
}
