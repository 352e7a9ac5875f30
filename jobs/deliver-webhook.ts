import type { JobData } from '../src/queues/table';
import { DelayedError, type Job } from 'bullmq';
import type { DeliverWebhook } from '../src/operations/deliver-webhook';

export type DeliverWebhookData = JobData['deliverWebhook'];

type PumpJob = Pick<Job<DeliverWebhookData>, 'data'> &
  Partial<Pick<Job<DeliverWebhookData>, 'moveToDelayed'>>;

/**
 * Runs one webhook's pump (src/operations/deliver-webhook.ts): delivers what is due; a receiver to try
 * again later puts the job back in the delayed set until then (BullMQ's DelayedError: the job keeps
 * its id, so new deliveries of that webhook wait for it rather than start another).
 */
export function createDeliverWebhookJob(deps: { deliverWebhook: DeliverWebhook }) {
  return async (job: PumpJob, token?: string): Promise<string> => {
    const outcome = await deps.deliverWebhook(job.data.webhookId);
    if ('idle' in outcome) return 'nothing due';
    await job.moveToDelayed!(outcome.retryAt, token);
    throw new DelayedError(outcome.why);
  };
}
