import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import type { RecordLinks } from '../operations/record-links';
import type { LinkMeter, LinkReport } from './link-meter';

/** Chart buckets past their day are dropped this often. */
const PRUNE_PERIOD_MS = 3600_000;
/**
 * Robots' figures written in one transaction. A gateway's 10,000 robots in one took its event loop
 * ~0.6 s in a storm (building ~20 arrays of 10,000 values and sending them), and held each robot's
 * key share (their link rows' foreign keys) for the ~1 s of the transaction.
 */
const SLICE = 1000;

/**
 * Writes what the link meter learnt since the last call, SLICE robots a transaction one after the
 * other (figures not written are taken again with the next call), and now and then drops the chart
 * buckets past their day. Off the heartbeat's path: a failure is logged and the next call carries it.
 */
export function createLinkReports(deps: {
  readonly meter: Pick<LinkMeter, 'take' | 'written' | 'retake'>;
  readonly record: RecordLinks;
  readonly prune: () => Promise<number>;
  readonly metrics: Pick<Metrics, 'linkChanges'>;
  readonly logger: Logger;
}) {
  let prunedAt = 0;
  async function write(reports: LinkReport[]): Promise<void> {
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
  }
  return async function report(): Promise<void> {
    const reports = deps.meter.take();
    for (let i = 0; i < reports.length; i += SLICE) await write(reports.slice(i, i + SLICE));
    if (Date.now() - prunedAt < PRUNE_PERIOD_MS) return;
    prunedAt = Date.now();
    await deps
      .prune()
      .catch((err: Error) => deps.logger.warn({ err: err.message }, 'could not drop old link buckets'));
  };
}
