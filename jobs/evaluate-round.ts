import type { Db } from '../src/db/knex';
import { connectDevice, disconnectDevices, type Disconnected } from '../src/db/transitions';
import type { Logger } from '../src/logger';
import type { Metrics } from '../src/metrics';
import type { Liveness } from '../src/redis/liveness';
import type { Rounds } from '../src/redis/rounds';

export const name = 'evaluate-round';

export interface EvaluateRoundDeps {
  readonly db: Db;
  readonly liveness: Liveness;
  readonly rounds: Rounds;
  readonly maxMisses: () => Promise<number>;
  readonly automaticRecording: () => Promise<boolean>;
  readonly enqueueEffects: (done: readonly Disconnected[]) => Promise<void>;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Devices handled per transaction. */
  readonly batchSize?: number;
  readonly now?: () => number;
}

export interface EvaluateRoundResult {
  readonly round: number;
  readonly outcome: 'valid' | 'void' | 'held' | 'unknown';
  readonly disconnected: number;
  readonly reconnected: number;
}

/**
 * Evaluation of round n, run once when n closes. Costs O(devices that change state): the devices
 * past the miss threshold are claimed from the connected index (ordered by last-heard round), then
 * disconnected in batches, each a compare-and-set with its session, event and effect rows. Safe to
 * re-run after a crash: the claim list survives in Redis and every step is idempotent.
 */
export function createEvaluateRound(deps: EvaluateRoundDeps) {
  const batchSize = deps.batchSize ?? 500;
  const now = deps.now ?? Date.now;
  return async (data: { round: number }): Promise<EvaluateRoundResult> => {
    const n = data.round;
    const meta = await deps.rounds.meta(n);
    const outcome = meta?.outcome ?? 'unknown';
    if (outcome !== 'valid') return { round: n, outcome, disconnected: 0, reconnected: 0 };
    const max = await deps.maxMisses();
    let disconnected = 0;
    let reconnected = 0;
    for (;;) {
      const claimed = await deps.liveness.claimStale(n, max, batchSize);
      if (claimed.length === 0) break;
      const done = await disconnectDevices(
        deps.db,
        claimed.map((c) => ({
          deviceId: c.deviceId,
          beforeRound: c.lastRound + 1,
          missedRounds: c.missedRounds,
          lastRoundHeard: c.lastRound,
          lastHeartbeatAt: c.lastSeenMs === null ? null : new Date(c.lastSeenMs),
        })),
        'MISSED_HEARTBEATS',
      );
      disconnected += done.length;
      deps.metrics.transitions.inc({ to: 'DISCONNECTED' }, done.length);
      const t = now();
      for (const c of claimed)
        if (c.lastSeenMs !== null) deps.metrics.detectionSeconds.observe((t - c.lastSeenMs) / 1000);
      await deps.enqueueEffects(done);
      // A heartbeat that arrived after the claim re-entered the index: that device is alive again
      // and gets a new session now (the gateway could not connect it while it was still CONNECTED).
      for (const c of claimed) {
        const heardIn = await deps.liveness.isIndexed(c.deviceId);
        if (heardIn === null) continue;
        const session = await connectDevice(deps.db, c.deviceId, heardIn, {
          automaticRecording: await deps.automaticRecording(),
        });
        if (session) {
          reconnected++;
          deps.metrics.transitions.inc({ to: 'CONNECTED' });
        }
      }
      await deps.liveness.releaseClaims(
        n,
        claimed.map((c) => c.deviceId),
      );
      if (done.length > 0) deps.logger.info({ round: n, disconnected: done.length }, 'devices disconnected');
    }
    return { round: n, outcome, disconnected, reconnected };
  };
}
