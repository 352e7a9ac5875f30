import { UNSTABLE_LOSSES, UNSTABLE_WINDOW_MS } from '../domain/bus-losses';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import type { BusLossStore } from '../redis/bus-losses';
import type { BusLossLog } from './bus-loss-log';

export interface BusLossReportsDeps {
  readonly log: BusLossLog;
  readonly store: Pick<BusLossStore, 'write'>;
  /** Marks buses unstable (DEVICE_BUS_UNSTABLE for each newly marked); answers the newly marked. */
  readonly markUnstable: (
    deviceIds: readonly string[],
    fields: { losses: number; windowSeconds: number },
  ) => Promise<string[]>;
  readonly metrics: Pick<Metrics, 'busesUnstable'>;
  readonly logger: Logger;
}

/**
 * Writes what the gateway learnt of its lost buses since the last call, before the lease renewal that
 * vouches for the rounds they concern (a failed write is kept for the next); marks the buses lost too
 * often as unstable, in the background (the alarm must not hold up the lease).
 */
export function createBusLossReports(deps: BusLossReportsDeps) {
  return async function report(): Promise<void> {
    const changes = deps.log.take();
    if (changes.size === 0) return;
    try {
      await deps.store.write(changes);
    } catch (err) {
      deps.log.retake(changes.keys());
      throw err;
    }
    const unstable = deps.log.unstable(changes.keys());
    if (unstable.length === 0) return;
    const fields = { losses: UNSTABLE_LOSSES, windowSeconds: UNSTABLE_WINDOW_MS / 1000 };
    void deps
      .markUnstable(unstable, fields)
      .then((newly) => {
        if (newly.length === 0) return;
        deps.metrics.busesUnstable.inc(newly.length);
        deps.logger.warn({ devices: newly }, 'device buses keep losing their session: marked unstable');
      })
      .catch((err: Error) => deps.logger.warn({ err: err.message }, 'could not mark unstable buses'));
  };
}
