import { createHash, hash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A new device token: 256 random bits, base64url (43 characters). */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * A new device-bus id: 128 random bits, base64url (22 characters). It names the device's own Moth
 * track, so knowing it is what lets one join that bus: it is unguessable and unrelated to the token.
 */
export function newBusId(): string {
  return randomBytes(16).toString('base64url');
}

/** The only form in which a device token is ever stored: its SHA-256, hex. */
export function tokenHash(token: string): string {
  // One-shot hashing: this runs for every heartbeat.
  return hash('sha256', token, 'hex');
}

/**
 * tokenHash with a memory of at most `max` tokens (emptied when full, so a flood of new tokens costs
 * memory it gives back): for a bus whose tokens every member reads anyway, where the same robots are
 * heard every round.
 */
export function rememberingTokenHash(max: number): ((token: string) => string) & { readonly size: number } {
  const hashes = new Map<string, string>();
  const hashOf = (token: string) => {
    let hash = hashes.get(token);
    if (hash === undefined) {
      if (hashes.size >= max) hashes.clear();
      hashes.set(token, (hash = tokenHash(token)));
    }
    return hash;
  };
  return Object.defineProperty(hashOf, 'size', { get: () => hashes.size }) as typeof hashOf & {
    size: number;
  };
}

export interface SecretHash {
  readonly salt: string;
  readonly hash: string;
}

/** Salted SHA-256 of the registration secret. */
export function hashSecret(secret: string, salt = randomBytes(16).toString('hex')): SecretHash {
  return { salt, hash: createHash('sha256').update(salt).update(secret, 'utf8').digest('hex') };
}

/** Constant-time comparison of a presented secret with a stored hash. */
export function secretMatches(presented: string, stored: SecretHash): boolean {
  const candidate = Buffer.from(hashSecret(presented, stored.salt).hash, 'hex');
  const expected = Buffer.from(stored.hash, 'hex');
  return candidate.length === expected.length && timingSafeEqual(candidate, expected);
}

/** Constant-time equality of two strings of any length (compares their digests). */
export function constantTimeEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}
