import { DelayedError, type Job } from 'bullmq';
import type { DeliverWebhook } from '../src/operations/deliver-webhook';

export interface DeliverWebhookData {
  readonly deliveryId: string;
}

type DeliveryJob = Pick<Job<DeliverWebhookData>, 'data' | 'attemptsMade' | 'opts'> &
  Partial<Pick<Job<DeliverWebhookData>, 'moveToDelayed'>>;

/**
 * Sends one webhook delivery; a failure throws, so BullMQ retries it with backoff. A delivery its
 * receiver cannot take now (circuit open, slots taken) goes back to the delayed set (BullMQ's
 * DelayedError: no attempt is spent, no slot held).
 */
export function createDeliverWebhookJob(deps: { deliverWebhook: DeliverWebhook }) {
  return async (job: DeliveryJob, token?: string): Promise<string> => {
    const outcome = await deps.deliverWebhook(
      job.data.deliveryId,
      job.attemptsMade + 1 >= (job.opts.attempts ?? 1),
    );
    if (typeof outcome === 'string') return outcome;
    await job.moveToDelayed!(outcome.at, token);
    throw new DelayedError(outcome.notYet);
  };
}
