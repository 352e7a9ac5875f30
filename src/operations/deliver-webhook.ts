import type { Db } from '../db/knex';
import {
  dueDeliveries,
  fanOutTo,
  findWebhook,
  noteReceiverOutcome,
  reconnectedSince,
  recordDelivered,
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
/** Due deliveries read at once; they go a few at a time, and what they did is written together. */
const READ_AHEAD = 100;
/** Events a pump fans out to its webhook at a time. */
const FAN_OUT_BATCH = 500;

/** What a pump's run ended with: nothing due any more, or a receiver to try again later. */
export type PumpOutcome = { readonly idle: true } | { readonly retryAt: number; readonly why: string };

/**
 * One webhook's pump: fans out the client events numbered since its cursor into its deliveries, and
 * delivers those due, oldest first, a few at once (one until its receiver has answered, and while it
 * fails). Each webhook has one pump (one job), so a
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
  /** Pending deliveries a webhook may have (the oldest beyond are skipped). */
  maxBacklog: number;
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
      // Its own fan-out: the events numbered since its cursor become its deliveries (a resting
      // receiver's wait in the stream meanwhile, not as rows).
      const fanned = await fanOutTo(deps.db, webhook.id, FAN_OUT_BATCH, deps.maxBacklog);
      const proven = answered.has(webhook.id) && webhook.consecutiveFailures === 0;
      const due = await dueDeliveries(deps.db, webhook.id, proven ? READ_AHEAD : 1);
      if (due.length === 0) {
        if (fanned.more) continue;
        return { idle: true };
      }
      if (!(await deliverAll(webhook, due, slotsFor(webhook, proven))))
        return restUntil((await findWebhook(deps.db, webhookId)) ?? webhook, true)!;
      if (now() - started > RUN_MS) return { retryAt: now(), why: 'its turn is over' };
    }
  };

  /**
   * Sends `due` in order, `slots` at once, none more after a failure; writes what the receiver took
   * in one statement. Answers whether every one is over (sent or skipped).
   */
  async function deliverAll(webhook: Webhook, due: readonly Delivery[], slots: number): Promise<boolean> {
    const taken: { id: string; statusCode: number }[] = [];
    let failed = false;
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(slots, due.length) }, async () => {
        while (!failed && next < due.length) {
          const delivery = due[next++]!;
          const outcome = await attempt(webhook, delivery);
          if (outcome === 'failed') failed = true;
          else if (typeof outcome === 'number') taken.push({ id: delivery.id, statusCode: outcome });
        }
      }),
    );
    await recordDelivered(deps.db, taken);
    // A failure in the batch counts as the receiver's latest word: its circuit is not closed again.
    if (taken.length > 0 && !failed) {
      answered.add(webhook.id);
      await noteReceiverOutcome(deps.db, webhook.id, true);
    }
    return !failed;
  }

  /** When a receiver that failed may be tried again: after its circuit's cool-down, or its backoff. */
  function restUntil(w: Webhook, justFailed = false): PumpOutcome | undefined {
    if (circuitState(w, now()) === 'open')
      return { retryAt: w.circuitOpenUntil!.getTime(), why: 'circuit open' };
    if (!justFailed) return undefined;
    const backoff = Math.min(BACKOFF_MAX_MS, deps.backoffMs * 2 ** Math.max(0, w.consecutiveFailures - 1));
    return { retryAt: now() + backoff * (0.8 + 0.4 * Math.random()), why: 'receiver failed' };
  }

  /** One attempt at one delivery: the receiver's 2xx status, skipped, or failed (recorded here). */
  async function attempt(webhook: Webhook, delivery: Delivery): Promise<number | 'skipped' | 'failed'> {
    if (
      delivery.eventType === 'DEVICE_DISCONNECTED' &&
      webhook.offlineForSeconds !== null &&
      delivery.deviceId !== null &&
      (await reconnectedSince(deps.db, delivery.deviceId, new Date(delivery.body.occurredAt)))
    ) {
      await skipDelivery(deps.db, delivery.id, `came back within ${webhook.offlineForSeconds} s`);
      return 'skipped';
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
      return 'failed';
    }
    return statusCode;
  }
}

export type DeliverWebhook = ReturnType<typeof createDeliverWebhook>;
