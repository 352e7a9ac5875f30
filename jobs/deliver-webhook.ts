import type { Job } from 'bullmq';
import type { DeliverWebhook } from '../src/operations/deliver-webhook';

export interface DeliverWebhookData {
  readonly deliveryId: string;
}

/** Sends one webhook delivery; a failure throws, so BullMQ retries it with backoff. */
export function createDeliverWebhookJob(deps: { deliverWebhook: DeliverWebhook }) {
  return (job: Pick<Job<DeliverWebhookData>, 'data' | 'attemptsMade' | 'opts'>): Promise<string> =>
    deps.deliverWebhook(job.data.deliveryId, job.attemptsMade + 1 >= (job.opts.attempts ?? 1));
}
