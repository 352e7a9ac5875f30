/**
 * Signed events, checked as rollcall signs them: Ed25519 over the event's canonical JSON (RFC 8785:
 * keys sorted at every level, no whitespace) without `kid` and `sig`. Web Crypto only, so the same
 * code runs in Node.js and in a browser.
 */

/** A public key as `GET /.well-known/rollcall-keys` publishes it. */
export interface PublicJwk {
  readonly kty: 'OKP';
  readonly crv: 'Ed25519';
  readonly x: string;
  readonly kid: string;
  readonly alg?: 'EdDSA';
  readonly use?: 'sig';
}

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

/** The bytes a signature covers: the event without its signature fields. */
export function signedBytes(event: Record<string, unknown>): Uint8Array {
  return new TextEncoder().encode(canonicalJson({ ...event, kid: undefined, sig: undefined }));
}

/** An Ed25519 signature in base64url without padding: 64 bytes, 86 characters. */
const SIGNATURE = /^[A-Za-z0-9_-]{86}$/;

export function fromBase64url(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/**
 * A frame as it came (a Moth frame, an SSE message's data), parsed: one JSON object with no key twice
 * at any level (parsers disagree on which of two wins, so one could act on a value the signature
 * never covered); else null.
 */
export function parseFrame(frame: string | Uint8Array): Record<string, unknown> | null {
  let text: string;
  let value: unknown;
  try {
    text = typeof frame === 'string' ? frame : new TextDecoder('utf-8', { fatal: true }).decode(frame);
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || hasDuplicateKey(text))
    return null;
  return value as Record<string, unknown>;
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

/**
 * The service's public keys, fetched from `GET /.well-known/rollcall-keys`; fetched again when an
 * event names a key not known yet (at most once every `refetchMs`: a flood of unknown key ids costs
 * one request per interval), and when they are older than `maxAgeMs` (a revoked key stops counting
 * within that time, as the service caches the set 60 s).
 */
export class KeySet {
  readonly #url: string;
  readonly #fetch: typeof fetch;
  readonly #refetchMs: number;
  readonly #maxAgeMs: number;
  #keys = new Map<string, Promise<CryptoKey>>();
  #fetchedAt = -Infinity;
  #fetching: Promise<void> | undefined;

  constructor(options: { api: string; fetch?: typeof fetch; refetchMs?: number; maxAgeMs?: number }) {
    this.#url = new URL('/.well-known/rollcall-keys', options.api).href;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#refetchMs = options.refetchMs ?? 5000;
    this.#maxAgeMs = options.maxAgeMs ?? 60_000;
  }

  /** Whether this event (with `kid` and `sig`) was signed by one of the service's keys. */
  async verify(event: Record<string, unknown>): Promise<boolean> {
    const { kid, sig } = event;
    if (typeof kid !== 'string' || typeof sig !== 'string' || !SIGNATURE.test(sig)) return false;
    const key = await this.#key(kid);
    if (!key) return false;
    return crypto.subtle.verify(
      'Ed25519',
      key,
      fromBase64url(sig),
      signedBytes(event) as Uint8Array<ArrayBuffer>,
    );
  }

  async #key(kid: string): Promise<CryptoKey | undefined> {
    const age = performance.now() - this.#fetchedAt;
    if (age >= this.#maxAgeMs || (!this.#keys.has(kid) && age >= this.#refetchMs)) await this.#refresh();
    return this.#keys.get(kid);
  }

  #refresh(): Promise<void> {
    this.#fetching ??= (async () => {
      try {
        const res = await this.#fetch(this.#url);
        if (!res.ok) throw new Error(`GET ${this.#url}: HTTP ${res.status}`);
        const { keys } = (await res.json()) as { keys: PublicJwk[] };
        this.#keys = new Map(
          keys.map((k) => [
            k.kid,
            crypto.subtle.importKey('jwk', { kty: k.kty, crv: k.crv, x: k.x }, { name: 'Ed25519' }, false, [
              'verify',
            ]),
          ]),
        );
        this.#fetchedAt = performance.now();
      } finally {
        this.#fetching = undefined;
      }
    })();
    return this.#fetching;
  }
}
