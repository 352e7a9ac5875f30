import type { Db } from '../db/knex';
import {
  findDelivery,
  findWebhook,
  noteReceiverOutcome,
  reconnectedSince,
  recordDeliveryAttempt,
  skipDelivery,
} from '../db/webhooks';
import { circuitState, signDelivery, slotsFor, type Webhook } from '../domain/webhooks';
import type { Logger } from '../logger';

const TIMEOUT_MS = 5000;
/** A delivery whose receiver has every slot taken is tried again this much later... */
const BUSY_RETRY_MS = 200;
/** ...or, when the receiver's oldest attempt has waited longer than this, once that one times out. */
const SLOW_MS = 1000;

/** A delivery not attempted now: its receiver's circuit is open, or its slots are taken. */
export interface NotYet {
  readonly notYet: string;
  /** When to look again (epoch ms). */
  readonly at: number;
}

/**
 * Sends one delivery: its event as the body, signed with a timestamp. A non-2xx answer or no answer
 * throws, so BullMQ retries with exponential backoff; the last attempt marks it FAILED. Each receiver
 * delays only its own deliveries: while its circuit is open (it failed CIRCUIT_THRESHOLD times in a
 * row) nothing is sent to it, and it has a few slots at once (one while it fails); a delivery that
 * finds either answers "not yet", holding no slot of the worker and spending no attempt. A disconnect
 * held for the webhook's offline time is sent only if the device has not come back meanwhile. At
 * least once: a crash after the receiver's 2xx sends it again, with the same X-Rollcall-Delivery.
 */
export function createDeliverWebhook(deps: {
  db: Db;
  logger: Logger;
  /** Deliveries this process runs at once (its worker's concurrency). */
  slots: number;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  /** When each attempt under way in this process began, per webhook (oldest first). */
  const inFlight = new Map<string, number[]>();
  /** Webhooks whose receiver answered 2xx in this process (and has not failed since). */
  const answered = new Set<string>();
  /** Attempts under way to receivers not (or no longer) answering: at most half the slots. */
  let unproven = 0;
  /** `last`: this is the last attempt, so a failure marks the delivery FAILED. */
  return async (deliveryId: string, last: boolean): Promise<string | NotYet> => {
    const delivery = await findDelivery(deps.db, deliveryId);
    if (!delivery || delivery.status !== 'PENDING') return `already ${delivery?.status ?? 'gone'}`;
    const webhook = await findWebhook(deps.db, delivery.webhookId);
    if (!webhook) {
      await skipDelivery(deps.db, delivery.id, 'the webhook was deleted');
      return 'skipped';
    }
    if (
      delivery.eventType === 'DEVICE_DISCONNECTED' &&
      webhook.offlineForSeconds !== null &&
      delivery.deviceId !== null &&
      (await reconnectedSince(deps.db, delivery.deviceId, new Date(delivery.body.occurredAt)))
    ) {
      await skipDelivery(deps.db, delivery.id, `came back within ${webhook.offlineForSeconds} s`);
      return 'skipped';
    }
    const proven = answered.has(webhook.id) && webhook.consecutiveFailures === 0;
    const wait = notYet(webhook, proven);
    if (wait) return wait;
    const started = now();
    inFlight.set(webhook.id, [...(inFlight.get(webhook.id) ?? []), started]);
    if (!proven) unproven++;
    try {
      return await attempt(webhook, delivery, last);
    } finally {
      if (!proven) unproven--;
      const rest = inFlight.get(webhook.id)!.filter((t) => t !== started);
      if (rest.length === 0) inFlight.delete(webhook.id);
      else inFlight.set(webhook.id, rest);
    }
  };

  /**
   * Why a delivery is not attempted now, if it is not: its receiver's circuit is open, its slots are
   * taken, or (a receiver that has not answered yet, or fails) half the process's slots already wait
   * on such receivers: the other half always serve the receivers that answer.
   */
  function notYet(webhook: Webhook, proven: boolean): NotYet | undefined {
    const t = now();
    const under = inFlight.get(webhook.id) ?? [];
    // A receiver slow to answer frees its slot only when it answers or times out: look again then,
    // rather than every moment (its waiting deliveries would crowd the queue).
    const slow = under.length > 0 && t - under[0]! > SLOW_MS;
    const freeAt = slow ? under[0]! + TIMEOUT_MS : t + BUSY_RETRY_MS;
    const later = (why: string) => ({ notYet: why, at: freeAt + Math.random() * BUSY_RETRY_MS });
    if (circuitState(webhook, t) === 'open')
      return { notYet: 'circuit open', at: webhook.circuitOpenUntil!.getTime() + Math.random() * 500 };
    if (under.length >= slotsFor(webhook, proven)) return later('receiver busy');
    if (!proven && unproven >= deps.slots / 2) return later('slots for unproven receivers taken');
    return undefined;
  }

  async function attempt(
    webhook: Webhook,
    delivery: NonNullable<Awaited<ReturnType<typeof findDelivery>>>,
    last: boolean,
  ): Promise<string> {
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
      throw err;
    }
    answered.add(webhook.id);
    await noteReceiverOutcome(deps.db, webhook.id, true);
    await recordDeliveryAttempt(deps.db, delivery.id, { statusCode, error: null, final: 'DELIVERED' });
    return 'delivered';
  }
}

export type DeliverWebhook = ReturnType<typeof createDeliverWebhook>;
