import { CAUGHT_UP_MARGIN_MS, validShards, type RoundClose } from '../domain/rounds';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import type { RoundMeta, Rounds } from '../redis/rounds';
import { SHARED_BUS } from '../domain/shards';
import type { ShardLeases } from '../redis/shard-leases';

export interface ConfirmRoundDeps {
  readonly rounds: Pick<Rounds, 'openedBy' | 'close'>;
  readonly leases: Pick<ShardLeases, 'all'>;
  readonly shards: number;
  readonly metrics: Pick<Metrics, 'shardRoundsVoidedLate'>;
  readonly logger: Logger;
  /** How long past the close (and the margin) the owners have to vouch for it; at most an interval. */
  readonly waitMs?: number;
  readonly pollMs?: number;
  readonly now?: () => number;
}

/**
 * Before a closed round counts as a miss for anyone: each shard it was valid for at its close must
 * still be, now that its gateway has had time to say whether it kept up with its buses through the
 * close (a gateway starved of CPU, paused for backpressure or writing late blames itself: its rounds
 * are void, never a miss for its robots). Waits for the owners to vouch past the close, a bounded
 * time; a shard still unvouched then is void for the round. Answers the shards confirmed, and
 * records the round's outcome again when that changed it.
 */
export function createConfirmRound(deps: ConfirmRoundDeps) {
  const now = deps.now ?? Date.now;
  const pollMs = deps.pollMs ?? 50;
  return async (meta: RoundMeta): Promise<readonly number[]> => {
    // Closed by an older version, or held: nothing to confirm.
    if (meta.closedAt === undefined || meta.outcome !== 'valid') return meta.validShards;
    const intervalMs = meta.intervalSeconds * 1000;
    const deadline = meta.closedAt + CAUGHT_UP_MARGIN_MS + Math.min(deps.waitMs ?? 2000, intervalMs);
    const opened = await deps.rounds.openedBy(meta.round);
    const atClose = new Set(meta.validShards);
    let confirmed: number[];
    for (;;) {
      const close: RoundClose = {
        shards: deps.shards,
        issuedAt: meta.issuedAt,
        intervalMs,
        opened,
        holds: await deps.leases.all(),
        now: now(),
        sharedBus: SHARED_BUS,
      };
      confirmed = validShards({ ...close, closedAt: meta.closedAt }).filter((s) => atClose.has(s));
      // Only a shard still valid in every other respect is worth waiting for.
      const vouching = validShards(close).filter((s) => atClose.has(s) && !confirmed.includes(s));
      if (vouching.length === 0 || now() >= deadline) break;
      await new Promise((r) => setTimeout(r, pollMs));
    }
    const voided = atClose.size - confirmed.length;
    if (voided > 0) {
      deps.metrics.shardRoundsVoidedLate.inc(voided);
      deps.logger.warn(
        { round: meta.round, voidShards: voided },
        'round void for shards whose gateway could not vouch it kept up with its buses',
      );
      await deps.rounds.close(meta.round, confirmed, meta.closedAt);
    }
    return confirmed;
  };
}

export type ConfirmRound = ReturnType<typeof createConfirmRound>;
