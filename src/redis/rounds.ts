import type { Redis, Result } from 'ioredis';
import type { RedisKeys } from './connection';

// Issues a round number for a scheduler job, once: a re-run of the same job (after a stall) gets the
// same number back; a tick scheduled too soon after the previous round's tick (a scheduler that fired
// early after a reschedule) gets none. Gaps are measured between *scheduled* times, so a tick that
// ran a little late does not cost the next one. ARGV: scheduledAt, minGapMs, meta key prefix,
// intervalSeconds, now (the issue time recorded).
const ADVANCE = `
local existing = redis.call('GET', KEYS[2])
if existing then return {tonumber(existing), 0} end
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
if tonumber(ARGV[1]) - last < tonumber(ARGV[2]) then return {0, 0} end
local n = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[2], n, 'EX', 3600)
redis.call('SET', KEYS[3], ARGV[1])
redis.call('HSET', ARGV[3] .. n, 'issuedAt', ARGV[5], 'interval', ARGV[4])
redis.call('EXPIRE', ARGV[3] .. n, 86400)
return {n, 1}`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    rollcallAdvance(
      round: string,
      jobKey: string,
      lastIssued: string,
      ...args: string[]
    ): Result<[number, number], Context>;
  }
}

export interface RoundMeta {
  readonly round: number;
  readonly issuedAt: number;
  readonly intervalSeconds: number;
  readonly broadcast: boolean;
  readonly outcome: 'valid' | 'void' | 'held' | null;
}

/** Round numbering and per-round facts, in Redis. */
export function createRounds(redis: Redis, keys: RedisKeys) {
  redis.defineCommand('rollcallAdvance', { numberOfKeys: 3, lua: ADVANCE });
  const metaPrefix = keys.roundMeta(0).slice(0, -1);

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
        keys.round,
        `${keys.round}:job:${jobId}`,
        `${keys.round}:last-issued`,
        String(scheduledAt),
        String(Math.floor(minGapMs)),
        metaPrefix,
        String(intervalSeconds),
        String(nowMs),
      );
      return { round: Number(round), fresh: fresh === 1 };
    },

    /** Holds round n (mass silence): a miss for nobody. Returns the length of the streak of held rounds. */
    async hold(round: number): Promise<number> {
      await this.close(round, 'held');
      return redis.incr(`${keys.round}:held-streak`);
    },

    async heldStreak(): Promise<number> {
      return Number((await redis.get(`${keys.round}:held-streak`)) ?? 0);
    },

    /** A round without mass silence ends the streak of held rounds. */
    async endHeldStreak(): Promise<void> {
      await redis.del(`${keys.round}:held-streak`);
    },

    async current(): Promise<number> {
      return Number((await redis.get(keys.round)) ?? 0);
    },

    /** Raises the counter to at least `floor` (after Redis lost it, from what Postgres remembers). */
    async raiseTo(floor: number): Promise<void> {
      const current = Number((await redis.get(keys.round)) ?? 0);
      if (current < floor) await redis.set(keys.round, floor);
    },

    async markBroadcast(round: number): Promise<void> {
      await redis.hset(keys.roundMeta(round), 'broadcast', '1');
    },

    async meta(round: number): Promise<RoundMeta | null> {
      const h = await redis.hgetall(keys.roundMeta(round));
      if (!h.issuedAt) return null;
      return {
        round,
        issuedAt: Number(h.issuedAt),
        intervalSeconds: Number(h.interval),
        broadcast: h.broadcast === '1',
        outcome: (h.outcome as RoundMeta['outcome']) ?? null,
      };
    },

    /**
     * Records how round n ended. Only valid rounds enter the index that miss counting uses, so a void
     * or held round is a miss for nobody. Keeps the last 1000 valid rounds.
     */
    async close(round: number, outcome: 'valid' | 'void' | 'held'): Promise<void> {
      const tx = redis.multi().hset(keys.roundMeta(round), 'outcome', outcome);
      if (outcome === 'valid') tx.zadd(keys.validRounds, round, String(round));
      else tx.zrem(keys.validRounds, String(round));
      await tx.zremrangebyrank(keys.validRounds, 0, -1001).exec();
    },
  };
}
export type Rounds = ReturnType<typeof createRounds>;

export interface GatewayPresence {
  /** Since when this gateway's device-channel session has been up without a break, or null. */
  readonly since: number | null;
  /** When it last reported. */
  readonly at: number;
}

/** Each gateway reports whether it holds its Moth session; a round is void when none held it throughout. */
export function createGatewayRegistry(redis: Redis, keys: RedisKeys, staleAfterMs = 3000) {
  return {
    async report(gatewayId: string, since: number | null, now = Date.now()): Promise<void> {
      await redis.hset(keys.gateways, gatewayId, JSON.stringify({ since, at: now }));
    },
    async remove(gatewayId: string): Promise<void> {
      await redis.hdel(keys.gateways, gatewayId);
    },
    /** True when some live gateway has held its session since `fromMs` or earlier. */
    async heldSince(fromMs: number, now = Date.now()): Promise<boolean> {
      const all = await redis.hgetall(keys.gateways);
      return Object.values(all).some((raw) => {
        try {
          const p = JSON.parse(raw) as GatewayPresence;
          return p.since !== null && p.since <= fromMs && now - p.at <= staleAfterMs;
        } catch {
          return false;
        }
      });
    },
  };
}
export type GatewayRegistry = ReturnType<typeof createGatewayRegistry>;
