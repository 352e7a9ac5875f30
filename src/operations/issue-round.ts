import type { Logger } from '../logger';
import { healthcheck, type HealthcheckMessage } from '../moth/codec';
import type { Metrics } from '../metrics';
import { validShards } from '../domain/rounds';
import type { RoundMeta, Rounds } from '../redis/rounds';
import { SHARED_BUS } from '../domain/shards';
import type { ShardLeases } from '../redis/shard-leases';

export interface IssueRoundDeps {
  readonly rounds: Rounds;
  readonly leases: Pick<ShardLeases, 'all'>;
  readonly shards: number;
  /** Announces the round to every gateway, which sends HEALTHCHECK on the buses it holds. */
  readonly announce: (round: number, message: HealthcheckMessage) => Promise<void>;
  readonly intervalSeconds: () => Promise<number>;
  /** Re-creates the liveness index after Redis lost it (no-op when it is intact). */
  readonly ensureLivenessState: () => Promise<void>;
  readonly enqueueEvaluation: (round: number) => Promise<void>;
  /** Keeps the scheduler's period equal to the setting (a no-op when it already is). */
  readonly reschedule: (intervalSeconds: number) => Promise<void>;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly now?: () => number;
}

export type IssueRoundResult =
  { skipped: 'late' | 'too-soon' } | { round: number; previous: 'valid' | 'void' | null };

/**
 * One scheduler tick: issue round n (advance the counter, announce it to the gateways), which closes
 * round n-1: decide for which shards n-1 was valid and enqueue its single evaluation.
 */
export function createIssueRound(deps: IssueRoundDeps) {
  const now = deps.now ?? Date.now;
  /** `tick` names the scheduler's tick (a retry of it issues nothing twice); `scheduledAt` is when it was due. */
  return async (tick: string, scheduledAt: number): Promise<IssueRoundResult> => {
    const intervalSeconds = await deps.intervalSeconds();
    const intervalMs = intervalSeconds * 1000;
    await deps.reschedule(intervalSeconds);
    const t = now();
    // A tick that waited in the queue (all gateways were down, or the one taking it was starved of
    // CPU) is not issued late: devices would get rounds in a burst and miss them. The next tick comes
    // within one interval; the robots wait that much longer for a HEALTHCHECK, which is told.
    if (t - scheduledAt > Math.max(intervalMs / 2, 1000)) {
      deps.metrics.roundTicksSkipped.inc({ why: 'late' });
      deps.logger.warn({ tick, lateMs: t - scheduledAt }, 'round tick skipped: it ran too late');
      return { skipped: 'late' };
    }

    await deps.ensureLivenessState();
    const { round, fresh } = await deps.rounds.advance(
      tick,
      scheduledAt,
      t,
      intervalMs * 0.8,
      intervalSeconds,
    );
    if (round === 0) {
      deps.metrics.roundTicksSkipped.inc({ why: 'too-soon' });
      return { skipped: 'too-soon' };
    }

    const prev = round > 1 ? await deps.rounds.meta(round - 1) : null;
    const previous = prev && prev.outcome === null ? await closePrevious(deps, prev, t) : null;
    if (prev) await deps.enqueueEvaluation(round - 1);

    const meta = await deps.rounds.meta(round);
    if (fresh || !meta?.broadcast) {
      try {
        await deps.announce(
          round,
          healthcheck(round, intervalSeconds, new Date(meta?.issuedAt ?? t), meta?.nonce),
        );
      } catch (err) {
        // Not retried: a late HEALTHCHECK is worse than none. The round will be void.
        deps.logger.warn({ round, err: (err as Error).message }, 'round announcement failed');
      }
    }
    return { round, previous };
  };
}

/** Closes the round before the one just issued: valid for the shards whose gateways heard it throughout. */
async function closePrevious(deps: IssueRoundDeps, prev: RoundMeta, t: number): Promise<'valid' | 'void'> {
  const valid = prev.broadcast
    ? validShards({
        shards: deps.shards,
        issuedAt: prev.issuedAt,
        intervalMs: prev.intervalSeconds * 1000,
        opened: await deps.rounds.openedBy(prev.round),
        holds: await deps.leases.all(),
        now: t,
        sharedBus: SHARED_BUS,
      })
    : [];
  const outcome = valid.length > 0 ? 'valid' : 'void';
  await deps.rounds.close(prev.round, valid, t);
  deps.metrics.rounds.inc({ outcome });
  if (valid.length < deps.shards)
    deps.logger.warn(
      { round: prev.round, voidShards: deps.shards - valid.length },
      valid.length === 0 ? 'round void: no gateway heard it throughout' : 'round void for some shards',
    );
  return outcome;
}

export type IssueRound = ReturnType<typeof createIssueRound>;
