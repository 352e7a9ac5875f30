import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Protocol v2 liveness proofs. Each HEALTHCHECK carries a fresh nonce for its round; a v2 device
 * answers `{"type":"HEARTBEAT","deviceId","round","proof"}` where
 *
 *     proof = base64url(HMAC-SHA-256(key = SHA-256(token), message = "<round>.<nonce>"))
 *
 * The key is the token's SHA-256 (the server never holds the token itself, only that hash), so a
 * proof says "I hold the token, now, for this round": heard by anyone, it is good for no other round
 * and is no credential on HTTP. The robot's side is the robot SDK's own (`@rollcall/robot`).
 */
export { proof as heartbeatProof } from '@rollcall/robot/proofs';

/**
 * What a proof is for. A goodbye proof signs `"GOODBYE.<round>.<nonce>"`, so a heartbeat proof heard
 * on the bus cannot be replayed as a goodbye (nor the reverse).
 */
export type Purpose = 'heartbeat' | 'goodbye';
const proofMessage = (round: number, nonce: string, purpose: Purpose) =>
  purpose === 'goodbye' ? `GOODBYE.${round}.${nonce}` : `${round}.${nonce}`;

/** The proof the server expects from the device whose stored token hash (hex) is `tokenHashHex`. */
export function expectedProof(
  tokenHashHex: string,
  round: number,
  nonce: string,
  purpose: Purpose = 'heartbeat',
): Buffer {
  return createHmac('sha256', Buffer.from(tokenHashHex, 'hex'))
    .update(proofMessage(round, nonce, purpose))
    .digest();
}

/** Whether a presented proof (base64url) is the expected one, in constant time. */
export function proofMatches(presented: string, expected: Buffer): boolean {
  const bytes = Buffer.from(presented, 'base64url');
  return bytes.length === expected.length && timingSafeEqual(bytes, expected);
}

/** A round's nonce: 128 random bits, base64url. */
export function newRoundNonce(): string {
  return randomBytes(16).toString('base64url');
}
