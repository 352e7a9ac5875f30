import type { Logger } from '../src/logger';

/**
 * Turns the client events numbered since the last run into webhook deliveries, starting the pump of
 * each webhook with some due now, then of every webhook with deliveries due (a pump already queued,
 * running or resting is left as it is: its job id is the webhook's). Delayed deliveries (a webhook's
 * offline time) are picked up by the run in which they come due.
 */
export function createFanOutWebhooks(deps: {
  fanOut: () => Promise<{ created: number; due: string[]; more: boolean }>;
  withDueDeliveries: () => Promise<string[]>;
  startPumps: (webhookIds: readonly string[]) => Promise<void>;
  logger: Logger;
}) {
  return async (): Promise<{ fannedOut: number; pumps: number }> => {
    let fannedOut = 0;
    for (let more = true; more;) {
      const batch = await deps.fanOut();
      // The pumps of what is due now start at once, not after the whole backlog is fanned out.
      if (batch.due.length > 0) await deps.startPumps(batch.due);
      fannedOut += batch.created;
      more = batch.more;
    }
    const due = await deps.withDueDeliveries();
    if (due.length > 0) await deps.startPumps(due);
    return { fannedOut, pumps: due.length };
  };
}
