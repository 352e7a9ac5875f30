import type { SessionEffects } from '../domain/effects';
import type { Heard } from '../db/transitions';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';

export interface ConnectorDeps {
  /** Connects many devices in one transaction; answers the sessions it began. */
  readonly connect: (heard: readonly Heard[]) => Promise<SessionEffects[]>;
  /** Hands the effects of committed sessions to their queues (the sweeper takes what this loses). */
  readonly handOff: (sessions: readonly SessionEffects[]) => Promise<void>;
  /** A batch could not be connected: its devices are forgotten, so their next heartbeat tries again. */
  readonly failed: (deviceIds: readonly string[]) => void;
  readonly metrics: Pick<Metrics, 'transitions'>;
  readonly logger: Logger;
  /** Devices per transaction. */
  readonly batchMax?: number;
  /** Transactions at once (each a connection of the pool). */
  readonly parallel?: number;
}

/** Up to `max` of the waiting devices, taken out, in the order they came. */
function takeBatch(waiting: Map<string, number>, max: number): Heard[] {
  const batch: Heard[] = [];
  for (const [deviceId, round] of waiting) {
    batch.push({ deviceId, round });
    waiting.delete(deviceId);
    if (batch.length === max) break;
  }
  return batch;
}

/** Effects of connected batches on their way to their queues, in order, behind no connect. */
function createHandOffs(deps: Pick<ConnectorDeps, 'handOff' | 'logger'>, settled: () => void) {
  let chain = Promise.resolve();
  let pending = 0;
  return {
    add(sessions: SessionEffects[]): void {
      pending++;
      chain = chain
        .then(() => deps.handOff(sessions))
        .catch((err: Error) => {
          deps.logger.warn({ err: err.message }, 'connect effects not enqueued; the sweeper will');
        })
        .finally(() => {
          pending--;
          settled();
        });
    },
    pending: () => pending,
  };
}

/**
 * The first heartbeats of devices, connected in batches off the heartbeat's path: the ingest hands
 * them over and goes on recording. While batches are in flight the next ones gather, so a fleet that
 * arrives at once is connected in a few transactions per round, not one per robot. Each device waits
 * here once (a second hand-over before its turn keeps the first round it was heard in).
 */
export function createConnector(deps: ConnectorDeps) {
  const batchMax = deps.batchMax ?? 500;
  const parallel = deps.parallel ?? 2;
  const waiting = new Map<string, number>();
  let running = 0;
  let inFlight = 0;
  const handOffs = createHandOffs(deps, () => settle());
  const idleWaiters: (() => void)[] = [];
  const isIdle = () => running === 0 && waiting.size === 0 && handOffs.pending() === 0;
  const settle = () => {
    if (isIdle()) for (const resolve of idleWaiters.splice(0)) resolve();
  };

  function add(heard: readonly Heard[]): void {
    for (const h of heard) if (!waiting.has(h.deviceId)) waiting.set(h.deviceId, h.round);
    pump();
  }

  function pump(): void {
    while (running < parallel && waiting.size > 0) {
      const batch = takeBatch(waiting, batchMax);
      running++;
      inFlight += batch.length;
      void connectBatch(batch).finally(() => {
        running--;
        inFlight -= batch.length;
        pump();
        settle();
      });
    }
  }

  async function connectBatch(batch: readonly Heard[]): Promise<void> {
    let sessions: SessionEffects[];
    try {
      sessions = await deps.connect(batch);
    } catch (err) {
      deps.logger.error({ err: (err as Error).message, devices: batch.length }, 'connect batch failed');
      deps.failed(batch.map((h) => h.deviceId));
      return;
    }
    deps.metrics.transitions.inc({ to: 'CONNECTED' }, sessions.length);
    // The slot goes to the next batch at once: a fleet arriving is connected at the pace of
    // Postgres, not of Redis taking effect jobs too.
    if (sessions.length > 0) handOffs.add(sessions);
  }

  return {
    add,
    /** Devices waiting or being connected. */
    backlog: () => waiting.size + inFlight,
    /** Resolves when every device handed over so far is connected (or failed), its effects handed off. */
    idle(): Promise<void> {
      if (isIdle()) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}

export type Connector = ReturnType<typeof createConnector>;
