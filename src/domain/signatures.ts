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
  let text: string;
  let event: unknown;
  try {
    text = typeof frame === 'string' ? frame : new TextDecoder('utf-8', { fatal: true }).decode(frame);
    event = JSON.parse(text);
  } catch {
    return null;
  }
  if (event === null || typeof event !== 'object' || Array.isArray(event) || hasDuplicateKey(text))
    return null;
  return verifyEvent(event as Record<string, unknown>, keys) ? (event as Record<string, unknown>) : null;
}

/** Whether valid JSON names a key twice in one object, at any level. */
function hasDuplicateKey(json: string): boolean {
  // Per open object its keys so far (null for an array); `last`: the last structural character.
  const open: (Set<string> | null)[] = [];
  let last = '';
  for (let i = 0; i < json.length; i++) {
    const c = json[i]!;
    if (c === '"') {
      let end = i + 1;
      while (json[end] !== '"') end += json[end] === '\\' ? 2 : 1;
      const keys = open.at(-1);
      if (keys && (last === '{' || last === ',')) {
        const key = JSON.parse(json.slice(i, end + 1)) as string;
        if (keys.has(key)) return true;
        keys.add(key);
      }
      i = end;
      last = '"';
    } else if ('{}[],:'.includes(c)) {
      if (c === '{') open.push(new Set());
      else if (c === '[') open.push(null);
      else if (c === '}' || c === ']') open.pop();
      last = c;
    }
  }
  return false;
}
