import type { Result } from 'ioredis';
import { newRoundNonce } from '../domain/proofs';
import type { Opening } from '../domain/rounds';
import type { RedisClient } from './connection';
import { createValidRounds, type LivenessKeys } from './liveness';
import type { KeySpace } from './key-space';
import { defineScripts } from './scripts';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    rollcallAdvance(
      round: string,
      jobKey: string,
      lastIssued: string,
      ...args: string[]
    ): Result<[number, number], Context>;
    rollcallRoundMeta(meta: string, ...args: string[]): Result<number, Context>;
  }
}

export interface RoundMeta {
  readonly round: number;
  readonly issuedAt: number;
  readonly intervalSeconds: number;
  /** What v2 devices prove their token against in this round (absent for rounds of older versions). */
  readonly nonce: string | undefined;
  /** Announced to the gateways (which send HEALTHCHECK on their buses). */
  readonly broadcast: boolean;
  /** `valid` when valid for at least one shard; `void` for none. */
  readonly outcome: 'valid' | 'void' | 'held' | null;
  /** The shards it was valid for (empty unless `valid`). */
  readonly validShards: readonly number[];
  /** When it was closed by the issue of the next (absent: closed otherwise, as by an older version). */
  readonly closedAt: number | undefined;
}

/** The keys of round numbering and per-round facts. */
export const roundKeys = (space: KeySpace) => ({
  /** The last round number issued. */
  counter: space.fleet('round'),
  /** The round a scheduler job issued (a re-run of the job gets it back). */
  issuedBy: (jobId: string) => space.fleet(`round:job:${jobId}`),
  /** When the last issued tick was scheduled. */
  lastIssued: space.fleet('round:last-issued'),
  /** Rounds held in a row by the mass-silence brake. */
  heldStreak: space.fleet('round:held-streak'),
  /** Per round: when it was issued, its interval and nonce, whether announced, its outcome. */
  meta: (n: number) => space.fleet(`round:${n}`),
  /** Per round: which gateway opened it on which shard, and when. */
  opened: (n: number) => space.fleet(`round:${n}:opened`),
  /** Pub/sub channel announcing each issued round to every gateway. */
  announced: space.fleet('rounds-issued'),
  /** Live gateways and when each last reported. */
  gateways: space.fleet('gateways'),
  /** The round scheduler's period, as last set (its absence says Redis lost the scheduler). */
  schedulerEvery: space.fleet('scheduler:every'),
});
export type RoundKeys = ReturnType<typeof roundKeys>;

type Keys = { readonly rounds: RoundKeys; readonly liveness: Pick<LivenessKeys, 'shard'> };

/** Round numbering and per-round facts, in Redis. */
export function createRounds(redis: RedisClient, keys: Keys, shards: number) {
  defineScripts(redis);
  const facts = roundFacts(redis, keys, shards);
  return { ...roundNumbering(redis, keys.rounds, facts), ...facts };
}

/** The round counter, the streak of held rounds and the scheduler's period. */
function roundNumbering(redis: RedisClient, keys: RoundKeys, facts: Pick<RoundFacts, 'close'>) {
  return {
    /** The round number for this job: `{round, fresh}`; round 0 means "do not issue". */
    async advance(
      jobId: string,
      scheduledAt: number,
      nowMs: number,
      minGapMs: number,
      intervalSeconds: number,
    ) {
      const [round, fresh] = await redis.rollcallAdvance(
        keys.counter,
        keys.issuedBy(jobId),
        keys.lastIssued,
        String(scheduledAt),
        String(Math.floor(minGapMs)),
      );
      // Written after the number, also by a re-run: a crash between the two leaves no round without them.
      if (round !== 0)
        await redis.rollcallRoundMeta(
          keys.meta(round),
          String(nowMs),
          String(intervalSeconds),
          newRoundNonce(),
        );
      return { round: Number(round), fresh: fresh === 1 };
    },

    /** Holds round n (mass silence): a miss for nobody. Returns the length of the streak of held rounds. */
    async hold(round: number): Promise<number> {
      await facts.close(round, 'held');
      return redis.incr(keys.heldStreak);
    },

    async heldStreak(): Promise<number> {
      return Number((await redis.get(keys.heldStreak)) ?? 0);
    },

    /** A round without mass silence ends the streak of held rounds. */
    async endHeldStreak(): Promise<void> {
      await redis.del(keys.heldStreak);
    },

    async current(): Promise<number> {
      return Number((await redis.get(keys.counter)) ?? 0);
    },

    /** The round scheduler's period in seconds, as last set; null when Redis lost it. */
    async schedulerEvery(): Promise<number | null> {
      const every = await redis.get(keys.schedulerEvery);
      return every === null ? null : Number(every);
    },

    async noteSchedulerEvery(intervalSeconds: number): Promise<void> {
      await redis.set(keys.schedulerEvery, String(intervalSeconds));
    },

    /** Raises the counter to at least `floor` (after Redis lost it, from what Postgres remembers). */
    async raiseTo(floor: number): Promise<void> {
      const current = Number((await redis.get(keys.counter)) ?? 0);
      if (current < floor) await redis.set(keys.counter, floor);
    },
  };
}

/** What is known of each round: its announcement, who opened it where, how it ended. */
function roundFacts(redis: RedisClient, keys: Keys, shards: number) {
  const validRounds = createValidRounds(redis, keys.liveness, shards);
  return {
    /** Announces round n to every gateway, which sends HEALTHCHECK on the buses it holds. */
    async announce(round: number, message: unknown): Promise<void> {
      await redis.publish(keys.rounds.announced, JSON.stringify(message));
      await redis.hset(keys.rounds.meta(round), 'broadcast', '1');
    },

    /** Records that `gateway` opened round n on these shards at `at`. */
    async markOpened(round: number, gateway: string, shards: readonly number[], at: number): Promise<void> {
      if (shards.length === 0) return;
      const key = keys.rounds.opened(round);
      await redis
        .multi()
        .hset(key, ...shards.flatMap((s) => [String(s), `${gateway}|${at}`]))
        .expire(key, 86400)
        .exec();
    },

    /** Who opened round n on which shard. */
    async openedBy(round: number): Promise<Map<number, Opening>> {
      const raw = await redis.hgetall(keys.rounds.opened(round));
      const out = new Map<number, Opening>();
      for (const [s, v] of Object.entries(raw)) {
        const [gateway, at] = v.split('|');
        out.set(Number(s), { gateway: gateway!, at: Number(at) });
      }
      return out;
    },

    async meta(round: number): Promise<RoundMeta | null> {
      return readMeta(round, await redis.hgetall(keys.rounds.meta(round)));
    },

    /**
     * Records how round n ended, per shard: only the shards it was valid for enter their valid
     * rounds (`createValidRounds`). `closedAt`: when the next round was issued (its evaluation then
     * confirms the shards against it).
     */
    async close(round: number, validShards: readonly number[] | 'held', closedAt?: number): Promise<void> {
      const valid = new Set(validShards === 'held' ? [] : validShards);
      const outcome = validShards === 'held' ? 'held' : valid.size > 0 ? 'valid' : 'void';
      await validRounds.record(round, valid);
      await redis.hset(keys.rounds.meta(round), 'outcome', outcome, 'validShards', [...valid].join(','));
      if (closedAt !== undefined) await redis.hset(keys.rounds.meta(round), 'closedAt', String(closedAt));
    },
  };
}
type RoundFacts = ReturnType<typeof roundFacts>;

function readMeta(round: number, h: Record<string, string>): RoundMeta | null {
  if (!h.issuedAt) return null;
  return {
    round,
    issuedAt: Number(h.issuedAt),
    intervalSeconds: Number(h.interval),
    nonce: h.nonce || undefined,
    broadcast: h.broadcast === '1',
    outcome: (h.outcome as RoundMeta['outcome']) ?? null,
    validShards: h.validShards ? h.validShards.split(',').filter(Boolean).map(Number) : [],
    closedAt: h.closedAt ? Number(h.closedAt) : undefined,
  };
}
export type Rounds = ReturnType<typeof createRounds>;

export interface GatewayPresence {
  /** Since when this gateway's device-channel session has been up without a break, or null. */
  readonly since: number | null;
  /** When it last reported. */
  readonly at: number;
}

/** Each gateway reports that it is alive; the live ones divide the shards between them. */
export function createGatewayRegistry(
  redis: RedisClient,
  keys: { readonly rounds: RoundKeys },
  staleAfterMs = 3000,
) {
  return {
    async report(gatewayId: string, now = Date.now()): Promise<void> {
      await redis.hset(keys.rounds.gateways, gatewayId, JSON.stringify({ at: now }));
    },
    async remove(gatewayId: string): Promise<void> {
      await redis.hdel(keys.rounds.gateways, gatewayId);
    },
    /** The gateways that reported within the last `staleAfterMs`. */
    async live(now = Date.now()): Promise<string[]> {
      const all = await redis.hgetall(keys.rounds.gateways);
      return Object.entries(all)
        .filter(([, raw]) => {
          try {
            return now - (JSON.parse(raw) as { at: number }).at <= staleAfterMs;
          } catch {
            // Not a report any gateway writes: counted as no gateway.
            return false;
          }
        })
        .map(([id]) => id)
        .sort();
    },
  };
}
export type GatewayRegistry = ReturnType<typeof createGatewayRegistry>;
