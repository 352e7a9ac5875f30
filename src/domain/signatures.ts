import { canonicalJson, parseFrame } from '@rollcall/client/signatures';
import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

export { canonicalJson };

/**
 * Signed events. Every event sent on the client channel or to a robot (and every event of the feed)
 * carries `kid` (the signing key's id) and `sig`: base64url Ed25519 over the event's canonical JSON
 * without those two fields. The public keys are at `GET /.well-known/rollcall-keys` (a JWKS).
 */

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

/** An Ed25519 signature in base64url without padding: 64 bytes, 86 characters. */
const SIGNATURE = /^[A-Za-z0-9_-]{86}$/;

/** Whether an event (as received, with `kid` and `sig`) was signed by one of these keys. */
export function verifyEvent(event: Record<string, unknown>, keys: readonly PublicJwk[]): boolean {
  const jwk = keys.find((k) => k.kid === event.kid);
  if (!jwk || typeof event.sig !== 'string' || !SIGNATURE.test(event.sig)) return false;
  const publicKey = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, format: 'jwk' });
  return verify(null, signedBytes(event), publicKey, Buffer.from(event.sig, 'base64url'));
}

/**
 * A signed event as it came (a Moth frame, a line of the feed), verified over those bytes: the event
 * when it is one JSON object, with no key twice at any level (parsers disagree on which of two wins:
 * one could act on a value the signature never covered), and signed by one of these keys; else null.
 */
export function verifySignedFrame(
  frame: string | Buffer,
  keys: readonly PublicJwk[],
): Record<string, unknown> | null {
  const event = parseFrame(frame);
  return event && verifyEvent(event, keys) ? event : null;
}
