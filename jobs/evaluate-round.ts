import type { Db } from '../src/db/knex';
import { devicesInMaintenance, inMaintenance } from '../src/db/devices';
import { allowancesOf, restingIn, strictestAllowance } from '../src/db/policies';
import { connectDevice, disconnectDevices, endStableFlapping, flapPolicy } from '../src/db/transitions';
import { staleAmong } from '../src/domain/policy';
import { holdsRound, isMassSilence } from '../src/domain/rounds';
import type { Logger } from '../src/logger';
import type { Metrics } from '../src/metrics';
import type { Claimed, Judge, Liveness } from '../src/redis/liveness';
import type { Rounds } from '../src/redis/rounds';
import { clientEvent } from '../src/domain/events';
import type { SessionEffects } from '../src/domain/effects';
import type { SettingValues } from '../src/domain/settings';
import { appendEvents } from '../src/db/outbox';
import { createHash } from 'node:crypto';

/** A UUID-shaped id that is the same for every attempt at the same round. */
function roundEventId(round: number): string {
  const h = createHash('sha256').update(`round-held-${round}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export const name = 'evaluate-round';

export interface EvaluateRoundDeps {
  readonly db: Db;
  readonly liveness: Liveness;
  readonly rounds: Rounds;
  readonly settings: () => Promise<SettingValues>;
  /**
   * Hands the effects of committed transitions to the effect queues. The worker passes the
   * dispatch queue here, so a mass disconnect waits for a few small adds, not one per effect.
   */
  readonly enqueueEffects: (done: readonly SessionEffects[]) => Promise<void>;
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
 * Evaluation of round n, run once when n closes. Costs O(devices that change state): the devices
 * past the miss threshold are claimed from the connected index (ordered by last-heard round), then
 * disconnected in batches, each a compare-and-set with its session, event and effect rows. Safe to
 * re-run after a crash: the claim list survives in Redis and every step is idempotent.
 */
export function createEvaluateRound(deps: EvaluateRoundDeps) {
  const batchSize = deps.batchSize ?? 1000;
  const parallelBatches = deps.parallelBatches ?? 2;
  const now = deps.now ?? Date.now;
  /** The mass-silence brake (src/domain/rounds.ts): holds round n, or lets its misses count. */
  async function holdOnMassSilence(
    n: number,
    validShards: readonly number[],
    settings: SettingValues,
  ): Promise<boolean> {
    // Only the shards the round was valid for: elsewhere nobody could have been heard.
    // Devices in maintenance are expected to fall silent, and those checked every k-th round were not
    // asked in this one: their silence says nothing of ours. Fewer silent than the minimum, with or
    // without them, is no mass silence: a quiet round does not ask Postgres which they are.
    let { connected, missed } = await deps.liveness.silenceOf(n, validShards);
    if (missed >= settings['device.massSilenceMinDevices']) {
      const expected = [...(await devicesInMaintenance(deps.db)), ...(await restingIn(deps.db, n))];
      ({ connected, missed } = await deps.liveness.silenceOf(n, validShards, expected));
    }
    const rule = {
      ratio: settings['device.massSilenceRatio'],
      minDevices: settings['device.massSilenceMinDevices'],
      maxHeldRounds: settings['device.massSilenceMaxHeldRounds'],
    };
    if (!isMassSilence({ missed, connected }, rule)) {
      await deps.rounds.endHeldStreak();
      return false;
    }
    const streak = await deps.rounds.heldStreak();
    if (!holdsRound(streak, rule)) {
      deps.logger.warn(
        { round: n, missed, connected, streak },
        'mass silence persists past the brake: misses count',
      );
      return false;
    }
    // The event first, under an id derived from the round, so a re-run cannot publish it twice.
    await appendEvents(deps.db, [
      {
        channel: 'client',
        event: {
          ...clientEvent('HEALTHCHECK_ROUND_HELD', null, {
            round: n,
            missed,
            connected,
            heldInARow: streak + 1,
          }).event,
          eventId: roundEventId(n),
        },
      },
    ]);
    await deps.rounds.hold(n);
    deps.metrics.rounds.inc({ outcome: 'held' });
    deps.logger.warn({ round: n, missed, connected, heldInARow: streak + 1 }, 'mass silence: round held');
    return true;
  }

  return async (data: { round: number }): Promise<EvaluateRoundResult> => {
    const n = data.round;
    const meta = await deps.rounds.meta(n);
    const outcome = meta?.outcome ?? 'unknown';
    if (outcome !== 'valid') return { round: n, outcome, disconnected: 0, reconnected: 0 };
    const settings = await deps.settings();
    if (await holdOnMassSilence(n, meta!.validShards, settings))
      return { round: n, outcome: 'held', disconnected: 0, reconnected: 0 };
    const serverMax = settings['device.healthcheckMaxConsecutiveMisses'];
    // Each device is judged by its own policy (its own, its group's, or the server's), read from
    // Postgres for the few silent long enough to be at risk: a change applies from the next round.
    const strictest = await strictestAllowance(deps.db, serverMax);
    const judge: Judge = async (pages) => {
      const allowed = await allowancesOf(
        deps.db,
        pages.flatMap((p) => p.candidates.map((c) => c.deviceId)),
        serverMax,
      );
      // A device with no row (removed by hand) has no policy left: it goes at the strictest.
      const allowance = (id: string) => allowed.get(id) ?? strictest;
      return pages.map((p) => staleAmong(n, p.candidates, p.validRounds, allowance));
    };
    let disconnected = 0;
    let reconnected = 0;
    // The effects of every transition, handed off once all decisions are written: on a mass
    // disconnect their fan-out would otherwise compete with the transactions for the same cores.
    // Their rows are committed with each batch, so the sweeper enqueues any whose hand-off is lost.
    const effects: SessionEffects[] = [];

    /** Disconnects one batch of claimed devices in one transaction, then releases their claims. */
    async function disconnectBatch(claimed: readonly Claimed[]): Promise<void> {
      const candidates = claimed.map((c) => ({
        deviceId: c.deviceId,
        beforeRound: c.lastRound + 1,
        missedRounds: c.missedRounds,
        lastRoundHeard: c.lastRound,
        lastHeartbeatAt: c.lastSeenMs === null ? null : new Date(c.lastSeenMs),
      }));
      // A device in maintenance that went silent ends its session as MAINTENANCE, with no effect but
      // stopping its recordings (when its window says so): no task aborted, not counted as a failure.
      const maintenance = await inMaintenance(
        deps.db,
        claimed.map((c) => c.deviceId),
      );
      const failed = await disconnectDevices(
        deps.db,
        candidates.filter((c) => !maintenance.has(c.deviceId)),
        'MISSED_HEARTBEATS',
      );
      const expected = [
        ...(await disconnectDevices(
          deps.db,
          candidates.filter((c) => maintenance.get(c.deviceId) === true),
          'MAINTENANCE',
          ['stop-recording'],
        )),
        ...(await disconnectDevices(
          deps.db,
          candidates.filter((c) => maintenance.get(c.deviceId) === false),
          'MAINTENANCE',
          [],
        )),
      ];
      const done = [...failed, ...expected];
      disconnected += done.length;
      deps.metrics.transitions.inc({ to: 'DISCONNECTED' }, done.length);
      deps.metrics.disconnects.inc({ reason: 'MISSED_HEARTBEATS' }, failed.length);
      deps.metrics.disconnects.inc({ reason: 'MAINTENANCE' }, expected.length);
      const t = now();
      const lastSeen = new Map(claimed.map((c) => [c.deviceId, c.lastSeenMs]));
      for (const d of failed) {
        const seen = lastSeen.get(d.deviceId);
        if (seen != null) deps.metrics.detectionSeconds.observe((t - seen) / 1000);
      }
      effects.push(...done);
      // A heartbeat that arrived after the claim re-entered the index: that device is alive again
      // and gets a new session now (the gateway could not connect it while it was still CONNECTED).
      const heardAgain = await deps.liveness.indexedMany(claimed.map((c) => c.deviceId));
      for (const [deviceId, heardIn] of heardAgain) {
        const session = await connectDevice(deps.db, deviceId, heardIn, {
          automaticRecording: settings['recording.automatic'],
          flap: flapPolicy(settings),
        });
        if (session) {
          reconnected++;
          deps.metrics.transitions.inc({ to: 'CONNECTED' });
          effects.push(session);
        }
      }
      await deps.liveness.releaseClaims(
        n,
        claimed.map((c) => c.deviceId),
      );
      if (done.length > 0) deps.logger.info({ round: n, disconnected: done.length }, 'devices disconnected');
    }

    // Batches touch disjoint devices, so they run side by side (Postgres uses every core) without
    // contending for a row.
    const limit = batchSize * parallelBatches;
    try {
      for (;;) {
        // HSCAN's count is a hint: what is left over stays claimed and comes back on the next pass.
        const claimed = (await deps.liveness.claimStale(n, strictest, limit, judge)).slice(0, limit);
        if (claimed.length === 0) break;
        const batches: Claimed[][] = [];
        for (let i = 0; i < claimed.length; i += batchSize) batches.push(claimed.slice(i, i + batchSize));
        // Every batch settles before a failure is thrown, so no transaction outlives this attempt;
        // a failed batch stays claimed, and the retry of this job takes it up.
        const failed = (await Promise.allSettled(batches.map(disconnectBatch))).find(
          (r) => r.status === 'rejected',
        );
        if (failed) throw failed.reason;
      }
    } finally {
      // Also after a failure: what was committed is handed off now rather than left to the sweeper.
      if (effects.length > 0)
        await deps.enqueueEffects(effects).catch((err: Error) => {
          deps.logger.warn({ round: n, err: err.message }, 'effect jobs not enqueued; the sweeper will');
        });
    }
    // A flapping device that has not failed for the window is stable again.
    await endStableFlapping(deps.db, settings['device.flapWindowSeconds']);
    return { round: n, outcome, disconnected, reconnected };
  };
}
