import { createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { EVENT_TYPES, type PlatformEvent } from './events';
import { groupNameSchema } from './policy';

/** `POST /webhooks`: where to send which client events, and for whom. */
export const webhookBody = z.strictObject({
  url: z
    .url({ protocol: /^https?$/, error: 'an http or https URL' })
    .max(2000)
    .refine((u) => !new URL(u).username && !new URL(u).password, 'no credentials in the URL'),
  events: z
    .array(z.enum(EVENT_TYPES))
    .min(1)
    .max(EVENT_TYPES.length)
    .refine((e) => new Set(e).size === e.length, 'each event type once'),
  /** DEVICE_DISCONNECTED is sent only if the device is still disconnected this long after. */
  offlineForSeconds: z.number().int().min(1).max(86_400).optional(),
  /** Only the events of the devices of this group. */
  group: groupNameSchema.optional(),
  /** Also alert on planned (GOODBYE) and maintenance disconnects (default: not). */
  expectedDisconnects: z.boolean().default(false),
  /**
   * Deliveries on their way to the receiver at once, once it answered (one before). A fleet's storm
   * is thousands of events in seconds: a receiver that can take them is given a wider window.
   */
  concurrency: z.number().int().min(1).max(256).default(16),
});
export type WebhookSpec = z.infer<typeof webhookBody>;

export interface Webhook extends Omit<WebhookSpec, 'offlineForSeconds' | 'group'> {
  readonly id: string;
  readonly offlineForSeconds: number | null;
  readonly group: string | null;
  readonly secret: string;
  readonly createdAt: Date;
  /** Failed attempts in a row (any success sets it back to 0). */
  readonly consecutiveFailures: number;
  /** Until when its circuit is open (no attempt is made), or null. */
  readonly circuitOpenUntil: Date | null;
}

/**
 * A receiver's circuit: closed (deliveries go, up to its `concurrency` at once), open after
 * CIRCUIT_THRESHOLD failures in a row (none go until its cool-down has passed: 5 s, doubling with each
 * failure more, at most 5 min), then half-open (one attempt at a time: a success closes it, a
 * failure opens it again, longer). Nothing is sent to a receiver whose circuit is open.
 */
export const CIRCUIT_THRESHOLD = 5;
const COOL_DOWN_MS = 5000;
const COOL_DOWN_MAX_MS = 5 * 60_000;
export type CircuitState = 'closed' | 'open' | 'half-open';

export function circuitState(
  w: Pick<Webhook, 'consecutiveFailures' | 'circuitOpenUntil'>,
  now: number,
): CircuitState {
  if (w.consecutiveFailures < CIRCUIT_THRESHOLD) return 'closed';
  return w.circuitOpenUntil !== null && w.circuitOpenUntil.getTime() > now ? 'open' : 'half-open';
}

/** How long the circuit stays open after `failures` in a row (null: it stays closed). */
export function coolDownMs(failures: number): number | null {
  if (failures < CIRCUIT_THRESHOLD) return null;
  return Math.min(COOL_DOWN_MAX_MS, COOL_DOWN_MS * 2 ** (failures - CIRCUIT_THRESHOLD));
}

const EXPECTED_REASONS = new Set(['PLANNED', 'MAINTENANCE', 'DELETED']);

/**
 * Whether an event goes to a webhook: its type is subscribed, its device is in the webhook's group
 * (when it names one), and a planned, maintenance or deletion disconnect only when asked for.
 */
export function wants(w: Webhook, e: PlatformEvent, deviceGroup: string | null): boolean {
  if (!w.events.includes(e.type as (typeof EVENT_TYPES)[number])) return false;
  if (w.group !== null && deviceGroup !== w.group) return false;
  const reason = (e as { reason?: unknown }).reason;
  if (e.type === 'DEVICE_DISCONNECTED' && typeof reason === 'string' && EXPECTED_REASONS.has(reason))
    return w.expectedDisconnects;
  return true;
}

/** When a delivery is due: a disconnect waits the webhook's offline time, anything else goes now. */
export function dueAt(w: Webhook, e: PlatformEvent): Date {
  const at = Date.parse(e.occurredAt);
  return new Date(
    e.type === 'DEVICE_DISCONNECTED' && w.offlineForSeconds ? at + w.offlineForSeconds * 1000 : at,
  );
}

/**
 * The signature a receiver checks: HMAC-SHA-256 under the webhook's secret of `<timestamp>.<body>`,
 * hex, sent as `X-Rollcall-Signature: sha256=<hex>` beside `X-Rollcall-Timestamp` (Unix seconds), so
 * a captured delivery replayed later fails the receiver's freshness check.
 */
export function signDelivery(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', keysOf(secret).legacy).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** A new webhook's secret, in the Standard Webhooks form: `whsec_` and the base64 of 32 random bytes. */
export const newWebhookSecret = (): string => `whsec_${randomBytes(32).toString('base64')}`;

/**
 * The Standard Webhooks signature (standardwebhooks.com, with verifiers in many languages), sent as
 * `webhook-signature` beside `webhook-id` (the delivery's id, the same on every attempt) and
 * `webhook-timestamp`: `v1,` and the base64 of HMAC-SHA-256 over `<id>.<timestamp>.<body>`, keyed by
 * the secret's bytes (the base64 after `whsec_`; a secret from before that form, base64url, decoded).
 */
export function standardSignature(secret: string, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', keysOf(secret).standard).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** The keys made of each secret in use, at most this many kept. */
const KEYS_KEPT = 1000;
const keys = new Map<string, { readonly standard: KeyObject; readonly legacy: KeyObject }>();

/**
 * A secret's two HMAC keys, made once: a delivery is signed twice, and an HMAC keyed by bytes costs
 * ~10 us to set up against ~2 us for one keyed by a KeyObject (Node 24), a fifth of a delivery's CPU.
 */
function keysOf(secret: string) {
  let made = keys.get(secret);
  if (!made) {
    if (keys.size >= KEYS_KEPT) keys.clear();
    made = {
      standard: createSecretKey(
        secret.startsWith('whsec_')
          ? Buffer.from(secret.slice('whsec_'.length), 'base64')
          : Buffer.from(secret, 'base64url'),
      ),
      legacy: createSecretKey(Buffer.from(secret, 'utf8')),
    };
    keys.set(secret, made);
  }
  return made;
}
