import type { SessionEffects } from '../domain/effects';
import { staleAmong } from '../domain/policy';
import type { SettingValues } from '../domain/settings';
import type { Db } from '../db/knex';
import { allowancesOf, strictestAllowance } from '../db/policies';
import { endStableFlapping } from '../db/transitions';
import { endStableBuses } from '../db/unstable-buses';
import { UNSTABLE_WINDOW_MS } from '../domain/bus-losses';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import type { Claimed, Judge, Liveness } from '../redis/liveness';
import type { BusLossStore } from '../redis/bus-losses';
import type { Rounds } from '../redis/rounds';
import type { ConfirmRound } from './confirm-round';
import type { ConnectDevices } from './connect-device';
import { createDisconnectBatch } from './disconnect-batch';
import { createHoldOnMassSilence } from './hold-on-mass-silence';

export interface EvaluateRoundDeps {
  readonly db: Db;
  readonly liveness: Liveness;
  /** The rounds in which the gateways lost a device's bus: excused for it alone, a bounded few. */
  readonly busLosses: Pick<BusLossStore, 'of'>;
  readonly rounds: Rounds;
  readonly settings: () => Promise<SettingValues>;
  readonly connectDevices: ConnectDevices;
  /** The shards the round stays valid for, once their gateways vouched they kept up through it. */
  readonly confirmRound: ConfirmRound;
  /**
   * Hands the effects of committed transitions to the effect queues. The worker passes the
   * dispatch queue here, so a mass disconnect waits for a few small adds, not one per effect.
   */
  readonly handOffEffects: (done: readonly SessionEffects[]) => Promise<void>;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Devices handled per transaction. */
  readonly batchSize?: number;
  /** Transactions run at once (each needs a connection of `db`'s pool). */
  readonly parallelBatches?: number;
  readonly now?: () => number;
}

export interface EvaluateRoundResult {
  readonly round: number;
  readonly outcome: 'valid' | 'void' | 'held' | 'unknown';
  readonly disconnected: number;
  readonly reconnected: number;
}

/**
 * Evaluation of round n, run once when n closes. Costs O(devices silent longer than the strictest
 * allowance): those are claimed from the connected index, each judged by its own policy (its own,
 * its group's or the server's, read from Postgres for the few at risk: a change applies from the
 * next round), then disconnected in batches. Safe to re-run after a crash: the claim list survives
 * in Redis and every step is idempotent.
 */
export function createEvaluateRound(deps: EvaluateRoundDeps) {
  const holdOnMassSilence = createHoldOnMassSilence(deps);
  const disconnect = createDisconnectBatch(deps);

  return async (n: number): Promise<EvaluateRoundResult> => {
    const meta = await deps.rounds.meta(n);
    const outcome = meta?.outcome ?? 'unknown';
    if (outcome !== 'valid') return { round: n, outcome, disconnected: 0, reconnected: 0 };
    const valid = await deps.confirmRound(meta!);
    if (valid.length === 0) return { round: n, outcome: 'void', disconnected: 0, reconnected: 0 };
    const settings = await deps.settings();
    if (await holdOnMassSilence(n, valid, settings))
      return { round: n, outcome: 'held', disconnected: 0, reconnected: 0 };
    const { disconnected, reconnected } = await settleStale(deps, disconnect, n, settings);
    // A flapping device that has not failed for the window is stable again.
    await endStableFlapping(deps.db, settings['device.flapWindowSeconds']);
    // So is a bus not lost for as long.
    await endStableBuses(deps.db, UNSTABLE_WINDOW_MS / 1000);
    return { round: n, outcome, disconnected, reconnected };
  };
}

/**
 * Claims the devices silent past their allowance in round `n` and settles them in batches: each
 * disconnected, or connected anew when heard again since the claim.
 */
async function settleStale(
  deps: EvaluateRoundDeps,
  disconnect: ReturnType<typeof createDisconnectBatch>,
  n: number,
  settings: SettingValues,
): Promise<{ disconnected: number; reconnected: number }> {
  const batchSize = deps.batchSize ?? 1000;
  const limit = batchSize * (deps.parallelBatches ?? 2);
  const serverMax = settings['device.healthcheckMaxConsecutiveMisses'];
  const strictest = await strictestAllowance(deps.db, serverMax);
  const judge = judgeBy(deps, n, serverMax, strictest);
  let disconnected = 0;
  let reconnected = 0;
  // The effects of every transition, handed off once all decisions are written: on a mass
  // disconnect their fan-out would otherwise compete with the transactions for the same cores.
  // Their rows are committed with each batch, so the sweeper enqueues any whose hand-off is lost.
  const effects: SessionEffects[] = [];
  async function settle(batch: readonly Claimed[]): Promise<void> {
    const ended = await disconnect(batch);
    const again = await reconnectHeardAgain(deps, batch);
    effects.push(...ended, ...again);
    disconnected += ended.length;
    reconnected += again.length;
    await deps.liveness.releaseClaims(
      n,
      batch.map((c) => c.deviceId),
    );
    if (ended.length > 0) deps.logger.info({ round: n, disconnected: ended.length }, 'devices disconnected');
  }
  try {
    for (;;) {
      // HSCAN's count is a hint: what is left over stays claimed and comes back on the next pass.
      const claimed = (await deps.liveness.claimStale(n, strictest, limit, judge)).slice(0, limit);
      if (claimed.length === 0) break;
      // Batches touch disjoint devices, so they run side by side without contending for a row.
      // Every batch settles before a failure is thrown, so no transaction outlives this attempt;
      // a failed batch stays claimed, and the retry of this job takes it up.
      const batches: Claimed[][] = [];
      for (let i = 0; i < claimed.length; i += batchSize) batches.push(claimed.slice(i, i + batchSize));
      const failed = (await Promise.allSettled(batches.map(settle))).find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    }
  } finally {
    // Also after a failure: what was committed is handed off now rather than left to the sweeper.
    if (effects.length > 0)
      await deps.handOffEffects(effects).catch((err: Error) => {
        deps.logger.warn({ round: n, err: err.message }, 'effect jobs not enqueued; the sweeper will');
      });
  }
  return { disconnected, reconnected };
}

/** Judges claimed pages by each device's own allowance and the rounds its bus was lost in. */
const judgeBy =
  (deps: EvaluateRoundDeps, n: number, serverMax: number, strictest: number): Judge =>
  async (pages) => {
    const ids = pages.flatMap((p) => p.candidates.map((c) => c.deviceId));
    const [allowed, losses] = await Promise.all([
      allowancesOf(deps.db, ids, serverMax),
      deps.busLosses.of(ids),
    ]);
    // A device with no row (removed by hand) has no policy left: it goes at the strictest.
    return pages.map((p) =>
      staleAmong(
        n,
        p.candidates,
        p.validRounds,
        (id) => allowed.get(id) ?? strictest,
        (id) => losses.get(id) ?? [],
      ),
    );
  };

/** A heartbeat that came after the claim re-entered the index: that device gets a new session. */
async function reconnectHeardAgain(
  deps: EvaluateRoundDeps,
  claimed: readonly Claimed[],
): Promise<SessionEffects[]> {
  const heardAgain = await deps.liveness.indexedMany(claimed.map((c) => c.deviceId));
  const sessions = await deps.connectDevices(
    [...heardAgain].map(([deviceId, round]) => ({ deviceId, round })),
  );
  deps.metrics.transitions.inc({ to: 'CONNECTED' }, sessions.length);
  return sessions;
}

export type EvaluateRound = ReturnType<typeof createEvaluateRound>;
