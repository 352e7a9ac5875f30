import type { Logger } from '../src/logger';

/**
 * Turns the client events numbered since each webhook's cursor into its deliveries, webhooks whose
 * receiver answers first, and starts the pump of each with deliveries due as soon as they are written;
 * then the pump of every webhook with deliveries due (a pump already queued, running or resting is
 * left as it is: its job id is the webhook's). Delayed deliveries (a webhook's offline time) are
 * picked up by the run in which they come due.
 */
export function createFanOutWebhooks(deps: {
  webhooks: () => Promise<string[]>;
  fanOutTo: (webhookId: string) => Promise<{ created: number; due: boolean; more: boolean }>;
  withDueDeliveries: () => Promise<string[]>;
  startPumps: (webhookIds: readonly string[]) => Promise<void>;
  logger: Logger;
}) {
  return async (): Promise<{ fannedOut: number; pumps: number }> => {
    let fannedOut = 0;
    for (const id of await deps.webhooks()) {
      for (let more = true; more;) {
        const batch = await deps.fanOutTo(id);
        if (batch.due) await deps.startPumps([id]);
        fannedOut += batch.created;
        more = batch.more;
      }
    }
    const due = await deps.withDueDeliveries();
    if (due.length > 0) await deps.startPumps(due);
    return { fannedOut, pumps: due.length };
  };
}
