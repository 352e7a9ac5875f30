import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Protocol v2 liveness proofs. Each HEALTHCHECK carries a fresh nonce for its round; a v2 device
 * answers `{"type":"HEARTBEAT","deviceId","round","proof"}` where
 *
 *     proof = base64url(HMAC-SHA-256(key = SHA-256(token), message = "<round>.<nonce>"))
 *
 * The key is the token's SHA-256 (the server never holds the token itself, only that hash), so a
 * proof says "I hold the token, now, for this round": heard by anyone, it is good for no other round
 * and is no credential on HTTP.
 */
export function heartbeatProof(token: string, round: number, nonce: string): string {
  return proofUnderKey(createHash('sha256').update(token).digest(), round, nonce);
}

/** The proof the server expects from the device whose stored token hash (hex) is `tokenHashHex`. */
export function expectedProof(tokenHashHex: string, round: number, nonce: string): Buffer {
  return createHmac('sha256', Buffer.from(tokenHashHex, 'hex')).update(`${round}.${nonce}`).digest();
}

function proofUnderKey(key: Buffer, round: number, nonce: string): string {
  return createHmac('sha256', key).update(`${round}.${nonce}`).digest('base64url');
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
