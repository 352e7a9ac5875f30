import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import type { RecordLinks } from '../operations/record-links';
import type { LinkMeter } from './link-meter';

/** Chart buckets past their day are dropped this often. */
const PRUNE_PERIOD_MS = 3600_000;

/**
 * Writes what the link meter learnt since the last call (figures not written are taken again with the
 * next), and now and then drops the chart buckets past their day. Off the heartbeat's path: a failure
 * is logged and the next call carries it.
 */
export function createLinkReports(deps: {
  readonly meter: Pick<LinkMeter, 'take' | 'written' | 'retake'>;
  readonly record: RecordLinks;
  readonly prune: () => Promise<number>;
  readonly metrics: Pick<Metrics, 'linkChanges'>;
  readonly logger: Logger;
}) {
  let prunedAt = 0;
  return async function report(): Promise<void> {
    const reports = deps.meter.take();
    try {
      const { degraded, recovered } = await deps.record(reports);
      deps.meter.written(reports);
      if (degraded) deps.metrics.linkChanges.inc({ to: 'degraded' }, degraded);
      if (recovered) deps.metrics.linkChanges.inc({ to: 'ok' }, recovered);
    } catch (err) {
      deps.meter.retake(reports);
      deps.logger.warn(
        { err: (err as Error).message, links: reports.length },
        'could not record link figures',
      );
    }
    if (Date.now() - prunedAt < PRUNE_PERIOD_MS) return;
    prunedAt = Date.now();
    await deps
      .prune()
      .catch((err: Error) => deps.logger.warn({ err: err.message }, 'could not drop old link buckets'));
  };
}
