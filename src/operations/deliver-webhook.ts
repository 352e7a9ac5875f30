import type { Db } from '../db/knex';
import {
  findDelivery,
  findWebhook,
  reconnectedSince,
  recordDeliveryAttempt,
  skipDelivery,
} from '../db/webhooks';
import { signDelivery } from '../domain/webhooks';
import type { Logger } from '../logger';

const TIMEOUT_MS = 5000;

/**
 * Sends one delivery: its event as the body, signed with a timestamp. A non-2xx answer or no answer
 * throws, so BullMQ retries with exponential backoff; the last attempt marks it FAILED. A disconnect
 * held for the webhook's offline time is sent only if the device has not come back meanwhile. At
 * least once: a crash after the receiver's 2xx sends it again, with the same X-Rollcall-Delivery.
 */
export function createDeliverWebhook(deps: { db: Db; logger: Logger; now?: () => number }) {
  const now = deps.now ?? Date.now;
  /** `last`: this is the last attempt, so a failure marks the delivery FAILED. */
  return async (deliveryId: string, last: boolean): Promise<string> => {
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
    await recordDeliveryAttempt(deps.db, delivery.id, { statusCode, error: null, final: 'DELIVERED' });
    return 'delivered';
  };
}

export type DeliverWebhook = ReturnType<typeof createDeliverWebhook>;
