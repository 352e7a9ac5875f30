import type { Logger } from '../src/logger';

/**
 * Turns the client events published since the last run into webhook deliveries and enqueues them
 * (each due when its event is, or its offline time later); also re-enqueues pending deliveries long
 * overdue, whose job was lost between the commit and the add. Job ids are the delivery ids, so a
 * repeat adds nothing twice.
 */
export function createFanOutWebhooks<Delivery>(deps: {
  fanOut: () => Promise<{ created: Delivery[]; more: boolean }>;
  overdue: () => Promise<Delivery[]>;
  enqueue: (deliveries: readonly Delivery[]) => Promise<void>;
  logger: Logger;
}) {
  return async (): Promise<{ fannedOut: number; requeued: number }> => {
    let fannedOut = 0;
    for (let more = true; more;) {
      const batch = await deps.fanOut();
      if (batch.created.length > 0) await deps.enqueue(batch.created);
      fannedOut += batch.created.length;
      more = batch.more;
    }
    const overdue = await deps.overdue();
    if (overdue.length > 0) {
      await deps.enqueue(overdue);
      deps.logger.info({ deliveries: overdue.length }, 'overdue webhook deliveries re-enqueued');
    }
    return { fannedOut, requeued: overdue.length };
  };
}
