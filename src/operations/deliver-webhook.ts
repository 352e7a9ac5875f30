import type { Db } from '../db/knex';
import {
  dueDeliveries,
  findWebhook,
  noteReceiverOutcome,
  reconnectedSince,
  recordDeliveryAttempt,
  skipDelivery,
  skipPending,
  type Delivery,
} from '../db/webhooks';
import { circuitState, signDelivery, slotsFor, type Webhook } from '../domain/webhooks';
import type { Logger } from '../logger';

const TIMEOUT_MS = 5000;
/** One run of a pump delivers at most this long, then gives its slot to the next webhook's pump. */
const RUN_MS = 10_000;
/** A failing receiver is tried again after the backoff, doubling with each failure in a row, at most this. */
const BACKOFF_MAX_MS = 5 * 60_000;

/** What a pump's run ended with: nothing due any more, or a receiver to try again later. */
export type PumpOutcome = { readonly idle: true } | { readonly retryAt: number; readonly why: string };

/**
 * Delivers one webhook's due deliveries, oldest first, a few at once (one until its receiver has
 * answered, and while it fails): the webhook's pump. Each webhook has one pump (one job), so a
 * receiver that is down, slow or never answers delays only its own deliveries and holds at most one
 * of the worker's slots, for at most one attempt's timeout. A failure ends the run: the pump is tried
 * again after a backoff (doubling) or, once its circuit opened (CIRCUIT_THRESHOLD failures in a row),
 * after the circuit's cool-down. Each body is signed with a timestamp; a delivery that failed its
 * last attempt is FAILED; a disconnect held for the webhook's offline time is sent only if the
 * device has not come back meanwhile. At least once: a crash after the receiver's 2xx sends it
 * again, with the same X-Rollcall-Delivery.
 */
export function createDeliverWebhook(deps: {
  db: Db;
  logger: Logger;
  /** Attempts per delivery. */
  attempts: number;
  /** The first backoff after a failure. */
  backoffMs: number;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  /** Webhooks whose receiver answered 2xx in this process (and has not failed since). */
  const answered = new Set<string>();

  return async (webhookId: string): Promise<PumpOutcome> => {
    const started = now();
    for (;;) {
      const webhook = await findWebhook(deps.db, webhookId);
      if (!webhook) {
        await skipPending(deps.db, webhookId, 'the webhook was deleted');
        return { idle: true };
      }
      const wait = restUntil(webhook);
      if (wait) return wait;
      const proven = answered.has(webhook.id) && webhook.consecutiveFailures === 0;
      const due = await dueDeliveries(deps.db, webhook.id, slotsFor(webhook, proven));
      if (due.length === 0) return { idle: true };
      const sent = await Promise.all(due.map((d) => attempt(webhook, d)));
      if (!sent.every(Boolean)) return restUntil((await findWebhook(deps.db, webhookId)) ?? webhook, true)!;
      if (now() - started > RUN_MS) return { retryAt: now(), why: 'its turn is over' };
    }
  };

  /** When a receiver that failed may be tried again: after its circuit's cool-down, or its backoff. */
  function restUntil(w: Webhook, justFailed = false): PumpOutcome | undefined {
    if (circuitState(w, now()) === 'open')
      return { retryAt: w.circuitOpenUntil!.getTime(), why: 'circuit open' };
    if (!justFailed) return undefined;
    const backoff = Math.min(BACKOFF_MAX_MS, deps.backoffMs * 2 ** Math.max(0, w.consecutiveFailures - 1));
    return { retryAt: now() + backoff * (0.8 + 0.4 * Math.random()), why: 'receiver failed' };
  }

  /** One attempt at one delivery; answers whether it is over (sent or skipped). */
  async function attempt(webhook: Webhook, delivery: Delivery): Promise<boolean> {
    if (
      delivery.eventType === 'DEVICE_DISCONNECTED' &&
      webhook.offlineForSeconds !== null &&
      delivery.deviceId !== null &&
      (await reconnectedSince(deps.db, delivery.deviceId, new Date(delivery.body.occurredAt)))
    ) {
      await skipDelivery(deps.db, delivery.id, `came back within ${webhook.offlineForSeconds} s`);
      return true;
    }
    const body = JSON.stringify(delivery.body);
    const timestamp = Math.floor(now() / 1000);
    let statusCode: number | null = null;
    try {
      const res = await fetch(webhook.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'rollcall-webhooks',
          'x-rollcall-delivery': delivery.id,
          'x-rollcall-event': delivery.eventType,
          'x-rollcall-timestamp': String(timestamp),
          'x-rollcall-signature': signDelivery(webhook.secret, timestamp, body),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      statusCode = res.status;
      await res.body?.cancel();
      if (res.status < 200 || res.status >= 300) throw new Error(`answered ${res.status}`);
    } catch (err) {
      const message = (err as Error).message;
      const last = delivery.attempts + 1 >= deps.attempts;
      answered.delete(webhook.id);
      await noteReceiverOutcome(deps.db, webhook.id, false);
      await recordDeliveryAttempt(deps.db, delivery.id, {
        statusCode,
        error: message,
        ...(last && { final: 'FAILED' as const }),
      });
      deps.logger.warn(
        { webhookId: webhook.id, deliveryId: delivery.id, statusCode, err: message, last },
        last ? 'webhook delivery failed for good' : 'webhook delivery will retry',
      );
      return false;
    }
    answered.add(webhook.id);
    await noteReceiverOutcome(deps.db, webhook.id, true);
    await recordDeliveryAttempt(deps.db, delivery.id, { statusCode, error: null, final: 'DELIVERED' });
    return true;
  }
}

export type DeliverWebhook = ReturnType<typeof createDeliverWebhook>;
