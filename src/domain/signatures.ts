import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

/**
 * Signed events. Every event sent on the client channel or to a robot (and every event of the feed)
 * carries `kid` (the signing key's id) and `sig`: base64url Ed25519 over the event's canonical JSON
 * without those two fields. The public keys are at `GET /.well-known/rollcall-keys` (a JWKS).
 */

/** JSON with object keys sorted at every level: the same bytes for the same value, however written. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** What is signed: the event without its signature fields. */
function signedBytes(event: Record<string, unknown>): Buffer {
  return Buffer.from(canonicalJson({ ...event, kid: undefined, sig: undefined }));
}

export interface SigningKey {
  readonly kid: string;
  readonly privateKey: KeyObject;
}

/** The event as sent: its fields, then `kid` and `sig`. */
export function signEvent<T extends object>(event: T, key: SigningKey): T & { kid: string; sig: string } {
  const sig = sign(null, signedBytes(event as Record<string, unknown>), key.privateKey).toString('base64url');
  return { ...event, kid: key.kid, sig };
}

/** A public key as the JWKS publishes it. */
export interface PublicJwk {
  readonly kty: 'OKP';
  readonly crv: 'Ed25519';
  readonly x: string;
  readonly kid: string;
  readonly alg: 'EdDSA';
  readonly use: 'sig';
}

/** Whether an event (as received, with `kid` and `sig`) was signed by one of these keys. */
export function verifyEvent(event: Record<string, unknown>, keys: readonly PublicJwk[]): boolean {
  const jwk = keys.find((k) => k.kid === event.kid);
  if (!jwk || typeof event.sig !== 'string') return false;
  const publicKey = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, format: 'jwk' });
  return verify(null, signedBytes(event), publicKey, Buffer.from(event.sig, 'base64url'));
}
