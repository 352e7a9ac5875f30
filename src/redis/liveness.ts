import type { Result } from 'ioredis';
import type { RedisClient } from './connection';
import type { KeySpace } from './key-space';

import { shardOf } from '../domain/shards';
import { MAX_ROUNDS_ALLOWED } from '../domain/policy';
import { defineScripts } from './scripts';

/** What a batch of heartbeats did, as decided atomically in Redis. */
export interface HeardBatch {
  /** Heartbeats that counted for the round open when they arrived (the fresh ones included). */
  heard: number;
  /** Echoes of a round older than the open one: they do not count. */
  stale: number;
  /** Rotated or deleted tokens, refused without a lookup. */
  revoked: number;
  /** Tokens of another device than the one whose bus carried them: refused. */
  misplaced: number;
  /** Heartbeats whose token hash the cache does not know: the caller resolves them from Postgres. */
  readonly unknown: HeartbeatInput[];
  /** Heartbeats refused as revoked or misplaced (the others, unknown and stale aside, were heard). */
  readonly refused: HeartbeatInput[];
  /** Plain-token heartbeats of devices that take proofs only (protocol v2): refused. */
  readonly downgraded: HeartbeatInput[];
  /** Proven heartbeats (counted) of devices not yet marked as taking proofs only. */
  readonly upgraded: HeartbeatInput[];
  /** Devices that were not in the connected index (a first or recovered heartbeat), once each. */
  readonly fresh: { deviceId: string; round: number }[];
}

export interface HeartbeatInput {
  readonly tokenHash: string;
  /** The device whose bus carried the heartbeat: the token must be its own. */
  readonly deviceId: string;
  /** The round its shard had open when it arrived. */
  readonly heardRound: number;
  /** The round the device echoed, if it did. */
  readonly round?: number | undefined;
  /** It came as a v2 proof (verified by the gateway) rather than with the token. */
  readonly proven?: boolean;
}

/** A token hash as the heartbeat cache holds it. */
export interface CachedToken {
  readonly tokenHash: string;
  readonly deviceId: string;
  /** The device has answered with a v2 proof: a plain-token heartbeat of it is refused. */
  readonly proofsOnly?: boolean;
}

/** A device silent past the strictest allowance, to be judged by its own policy. */
export interface Candidate {
  readonly deviceId: string;
  readonly lastRound: number;
}

/** A page of one shard's candidates, with what judging them needs. */
export interface CandidatePage {
  readonly candidates: readonly Candidate[];
  /** The shard's valid rounds after the oldest candidate's last round, up to n, ascending. */
  readonly validRounds: readonly number[];
}

export interface Stale {
  readonly deviceId: string;
  readonly lastRound: number;
  readonly missedRounds: number;
}

/** Picks, in each page, the stale candidates (with the valid rounds they missed). */
export type Judge = (pages: readonly CandidatePage[]) => Promise<Stale[][]>;

/** Candidates read per page while claiming. */
const CANDIDATE_PAGE = 1000;

export interface Claimed {
  readonly deviceId: string;
  readonly lastRound: number;
  readonly missedRounds: number;
  readonly lastSeenMs: number | null;
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    rollcallIngest(
      tokens: string,
      heard: string,
      lastSeen: string,
      ...args: string[]
    ): Result<(number | string)[], Context>;
    rollcallProofsOnly(tokens: string, ...args: string[]): Result<number, Context>;
    rollcallCandidates(
      heard: string,
      valid: string,
      claimed: string,
      ...args: string[]
    ): Result<[string[], string[], number], Context>;
    rollcallClaim(
      heard: string,
      claimed: string,
      lastSeen: string,
      ...args: string[]
    ): Result<string[], Context>;
  }
}

/** Heartbeats per INGEST call: Lua's unpack() is limited to a few thousand values. */
const INGEST_CHUNK = 1000;

/** Groups items by a key, keeping their order within each group. */
export function groupBy<T, K>(items: readonly T[], key: (item: T) => K): Map<K, T[]> {
  const out = new Map<K, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = out.get(k);
    if (group) group.push(item);
    else out.set(k, [item]);
  }
  return out;
}

/** Valid rounds kept per shard: a device allowed the most must still be seen to miss one more. */
const VALID_ROUNDS_KEPT = MAX_ROUNDS_ALLOWED + 1;

/** The keys of the liveness state: per shard, and the fleet-wide ones. */
export const livenessKeys = (space: KeySpace) => ({
  shard: (s: number) => ({
    /** Token hash -> device id (`!` after it: proofs only; `-`: revoked). */
    tokens: space.shard(s, 'tokens'),
    /** Connected devices, scored by the last round they were heard in. */
    heard: space.shard(s, 'heard'),
    /** Device -> when it was last heard (epoch ms). */
    lastSeen: space.shard(s, 'last-seen'),
    /** The last rounds valid for this shard (written as each round closes). */
    validRounds: space.shard(s, 'rounds:valid'),
    /** Device -> the rounds in which the gateway lost its bus (src/domain/bus-losses.ts). */
    busLosses: space.shard(s, 'bus-losses'),
    /** Devices claimed as stale by the evaluation of round n, until it disconnects them. */
    claimed: (n: number) => space.shard(s, `claimed:${n}`),
  }),
  /** The number of shards the state is kept in (every process must agree). */
  shardCount: space.fleet('shards'),
  /** Pub/sub channel telling every gateway of a revoked token: `{deviceId, tokenHash}`. */
  tokensRevoked: space.fleet('tokens-revoked'),
  /** Set once the state was rebuilt from Postgres (absent: Redis lost it). */
  seeded: space.fleet('liveness:seeded'),
  seedLock: space.fleet('liveness:seed-lock'),
});
export type LivenessKeys = ReturnType<typeof livenessKeys>;

/**
 * Each shard's last valid rounds, which miss counting uses: a round enters those of the shards it
 * was valid for and leaves the others', so a round void for a shard (or held) is a miss for nobody
 * there. Each keeps as many as the most lenient policy may allow a device to miss, and one more.
 */
export function createValidRounds(redis: RedisClient, keys: Pick<LivenessKeys, 'shard'>, shards: number) {
  return {
    async record(round: number, valid: ReadonlySet<number>): Promise<void> {
      await Promise.all(
        Array.from({ length: shards }, (_, s) => {
          const key = keys.shard(s).validRounds;
          return valid.has(s)
            ? redis
                .multi()
                .zadd(key, round, String(round))
                .zremrangebyrank(key, 0, -VALID_ROUNDS_KEPT - 1)
                .exec()
            : redis.zrem(key, String(round));
        }),
      );
    },
  };
}

interface Ctx {
  readonly redis: RedisClient;
  readonly keys: LivenessKeys;
  readonly shards: number;
  readonly allShards: readonly number[];
  readonly shardKeys: (deviceId: string) => ReturnType<LivenessKeys['shard']>;
  readonly byShard: <T>(items: readonly T[], id: (item: T) => string) => Map<number, T[]>;
}

/**
 * The hot liveness state in Redis, per shard: token cache, connected index, last-seen times, valid
 * rounds, claims. Every call touches the keys of one shard per command.
 */
export function createLiveness(
  redis: RedisClient,
  keys: { readonly liveness: LivenessKeys },
  shards: number,
) {
  defineScripts(redis);
  const ctx: Ctx = {
    redis,
    keys: keys.liveness,
    shards,
    allShards: Array.from({ length: shards }, (_, s) => s),
    shardKeys: (deviceId) => keys.liveness.shard(shardOf(deviceId, shards)),
    byShard: (items, id) => groupBy(items, (item) => shardOf(id(item), shards)),
  };
  return {
    ...seedingOf(ctx),
    ...heartbeatsOf(ctx),
    ...tokensOf(ctx),
    ...connectedIndexOf(ctx),
    ...claimsOf(ctx),
  };
}

/** The shard count every process agrees on, and the rebuilding of the state from Postgres. */
function seedingOf(ctx: Ctx) {
  const { redis, keys, shards } = ctx;
  return {
    /**
     * The shard count this deployment's state is kept in: the first process to ask sets it to its
     * own, every later one learns it (and must agree).
     */
    async agreedShardCount(): Promise<number> {
      await redis.set(keys.shardCount, String(shards), 'NX');
      return Number(await redis.get(keys.shardCount));
    },

    /** Whether the state was rebuilt from Postgres since Redis last lost it. */
    async seeded(): Promise<boolean> {
      return (await redis.exists(keys.seeded)) === 1;
    },

    /** Takes the rebuilding for `owner` (a minute at most): false while another process has it. */
    async claimSeeding(owner: string): Promise<boolean> {
      return (await redis.set(keys.seedLock, owner, 'PX', 60_000, 'NX')) === 'OK';
    },

    /** The rebuilding is over: `done` marks the state seeded; the claim is released either way. */
    async endSeeding(done: boolean): Promise<void> {
      if (done) await redis.set(keys.seeded, String(Date.now()));
      await redis.del(keys.seedLock);
    },
  };
}

/** Heartbeats recorded, a shard and round at a time. */
function heartbeatsOf(ctx: Ctx) {
  const { shards } = ctx;
  return {
    /** Records a batch of heartbeats: one round trip per shard and heard round (and INGEST_CHUNK). */
    async recordHeartbeats(batch: readonly HeartbeatInput[], nowMs = Date.now()): Promise<HeardBatch> {
      const out: HeardBatch = {
        heard: 0,
        stale: 0,
        revoked: 0,
        misplaced: 0,
        unknown: [],
        refused: [],
        downgraded: [],
        upgraded: [],
        fresh: [],
      };
      const groups = groupBy(batch, (h) => `${shardOf(h.deviceId, shards)}:${h.heardRound}`);
      const calls: Promise<void>[] = [];
      for (const group of groups.values())
        for (let start = 0; start < group.length; start += INGEST_CHUNK)
          calls.push(ingestChunk(ctx, group.slice(start, start + INGEST_CHUNK), nowMs, out));
      await Promise.all(calls);
      return out;
    },
  };
}

async function ingestChunk(ctx: Ctx, chunk: readonly HeartbeatInput[], nowMs: number, out: HeardBatch) {
  const { redis, shardKeys } = ctx;
  const k = shardKeys(chunk[0]!.deviceId);
  const round = chunk[0]!.heardRound;
  const echoes = chunk.some((h) => h.round !== undefined)
    ? chunk.map((h) => (h.round === undefined ? '' : String(h.round))).join(',')
    : '';
  const args: string[] = [String(nowMs), String(round), echoes];
  for (const h of chunk) args.push(h.tokenHash, h.proven ? `${h.deviceId}!` : h.deviceId);
  const reply = await redis.rollcallIngest(k.tokens, k.heard, k.lastSeen, ...args);
  const [stale, revoked, misplaced, unknown, downgraded, upgraded] = reply.slice(0, 6).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  let at = 6;
  const take = (count: number, into: HeartbeatInput[]) => {
    for (const end = at + count; at < end; at++) into.push(chunk[Number(reply[at]) - 1]!);
  };
  take(revoked + misplaced, out.refused);
  take(unknown, out.unknown);
  take(downgraded, out.downgraded);
  take(upgraded, out.upgraded);
  for (; at < reply.length; at++) out.fresh.push({ deviceId: String(reply[at]), round });
  out.heard += chunk.length - stale - revoked - misplaced - unknown - downgraded;
  out.stale += stale;
  out.revoked += revoked;
  out.misplaced += misplaced;
}

/** The token cache: hashes to devices, proofs-only marks, tombstones of revoked tokens. */
function tokensOf(ctx: Ctx) {
  const { redis, keys, byShard, shardKeys } = ctx;
  return {
    /**
     * Caches token hash -> device id, so heartbeats resolve without Postgres. Never overwrites an
     * entry: a lookup that raced with a rotation cannot bring a revoked token back.
     */
    async cacheTokens(entries: readonly CachedToken[]): Promise<void> {
      await Promise.all(
        [...byShard(entries, (e) => e.deviceId)].map(async ([s, group]) => {
          const tx = redis.multi();
          for (const e of group)
            tx.hsetnx(keys.shard(s).tokens, e.tokenHash, e.proofsOnly ? `${e.deviceId}!` : e.deviceId);
          await tx.exec();
        }),
      );
    },

    /** From now on these devices' tokens are taken in proofs only (see INGEST). */
    async requireProofs(entries: readonly { tokenHash: string; deviceId: string }[]): Promise<void> {
      await Promise.all(
        [...byShard(entries, (e) => e.deviceId)].map(([s, group]) =>
          redis.rollcallProofsOnly(keys.shard(s).tokens, ...group.flatMap((e) => [e.tokenHash, e.deviceId])),
        ),
      );
    },

    /**
     * Revokes a device's token hash in the cache (a tombstone, so no racing lookup can re-cache it),
     * and tells every gateway, so none counts it from memory either.
     */
    async forgetToken(deviceId: string, tokenHash: string): Promise<void> {
      await redis.hset(shardKeys(deviceId).tokens, tokenHash, '-');
      await redis.publish(keys.tokensRevoked, JSON.stringify({ deviceId, tokenHash }));
    },

    /** forgetToken for many devices: tombstones a shard at a time, then one notice per device. */
    async forgetTokens(revoked: readonly { deviceId: string; tokenHash: string }[]): Promise<void> {
      await Promise.all(
        [...byShard(revoked, (r) => r.deviceId)].map(([s, list]) =>
          redis.hset(keys.shard(s).tokens, Object.fromEntries(list.map((r) => [r.tokenHash, '-']))),
        ),
      );
      for (let i = 0; i < revoked.length; i += 500)
        await Promise.all(
          revoked.slice(i, i + 500).map((r) => redis.publish(keys.tokensRevoked, JSON.stringify(r))),
        );
    },
  };
}

/** The connected index and last-seen times. */
function connectedIndexOf(ctx: Ctx) {
  const { redis, keys, byShard, shardKeys, allShards } = ctx;
  return {
    /** Removes a device from the connected index (deleted, or its connect transition failed). */
    async forgetDevice(deviceId: string): Promise<void> {
      const k = shardKeys(deviceId);
      await redis.multi().zrem(k.heard, deviceId).hdel(k.lastSeen, deviceId).exec();
    },

    async lastHeardAt(deviceId: string): Promise<Date | null> {
      const ms = await redis.hget(shardKeys(deviceId).lastSeen, deviceId);
      return ms ? new Date(Number(ms)) : null;
    },

    /** Last heartbeat times (epoch ms) of many devices, one round trip per shard. */
    async lastHeardMany(deviceIds: readonly string[]): Promise<Map<string, number>> {
      const out = new Map<string, number>();
      await Promise.all(
        [...byShard(deviceIds, (id) => id)].map(async ([s, ids]) => {
          const values = await redis.hmget(keys.shard(s).lastSeen, ...ids);
          ids.forEach((id, i) => {
            if (values[i]) out.set(id, Number(values[i]));
          });
        }),
      );
      return out;
    },

    /** Which of these devices are in the connected index, and with which heard round. */
    async indexedMany(deviceIds: readonly string[]): Promise<Map<string, number>> {
      const out = new Map<string, number>();
      await Promise.all(
        [...byShard(deviceIds, (id) => id)].map(async ([s, ids]) => {
          const scores = await redis.zmscore(keys.shard(s).heard, ...ids);
          ids.forEach((id, i) => {
            if (scores[i] !== null && scores[i] !== undefined) out.set(id, Number(scores[i]));
          });
        }),
      );
      return out;
    },

    /** Connected devices of these shards, and how many of them were not heard in round n (or later). */
    silenceOf: (
      n: number,
      of: readonly number[] = allShards,
      /** Devices left out of both counts (in maintenance: their silence is expected). */
      excluding: readonly string[] = [],
    ) => silence(ctx, n, of, excluding),

    /** Puts connected devices into the index as heard in `round`, unless already there. */
    async seed(deviceIds: readonly string[], round: number): Promise<void> {
      await Promise.all(
        [...byShard(deviceIds, (id) => id)].map(([s, ids]) =>
          redis.zadd(keys.shard(s).heard, 'NX', ...ids.flatMap((id) => [round, id])),
        ),
      );
    },
  };
}

/** A page of shard `s`'s devices silent longer than `strictest` of its valid rounds, from `offset`. */
async function candidatePage(ctx: Ctx, n: number, strictest: number, s: number, offset: number) {
  const k = ctx.keys.shard(s);
  const [read, valid, claims] = await ctx.redis.rollcallCandidates(
    k.heard,
    k.validRounds,
    k.claimed(n),
    String(n),
    String(strictest),
    String(offset),
    String(CANDIDATE_PAGE),
  );
  const candidates: Candidate[] = [];
  for (let i = 0; i < read.length; i += 2)
    candidates.push({ deviceId: read[i]!, lastRound: Number(read[i + 1]) });
  return { candidates, validRounds: valid.map(Number), claims: Number(claims) };
}

/** Claims these devices of shard `s` for round n's evaluation, unless heard meanwhile. */
async function claim(ctx: Ctx, n: number, s: number, stale: readonly Stale[]): Promise<void> {
  const k = ctx.keys.shard(s);
  await ctx.redis.rollcallClaim(
    k.heard,
    k.claimed(n),
    k.lastSeen,
    '0',
    '0',
    ...stale.flatMap((c) => [c.deviceId, String(c.lastRound), String(c.missedRounds)]),
  );
}

/** What is claimed of shard `s` for round n and not yet released, up to `want`. */
async function claimsOfShard(ctx: Ctx, n: number, s: number, want: number): Promise<Claimed[]> {
  const k = ctx.keys.shard(s);
  const out = await ctx.redis.rollcallClaim(k.heard, k.claimed(n), k.lastSeen, String(want), '1');
  const claimed: Claimed[] = [];
  for (let i = 0; i < out.length; i += 3) {
    const [lastRound, missed] = String(out[i + 1]).split(':');
    const seen = out[i + 2];
    claimed.push({
      deviceId: String(out[i]),
      lastRound: Number(lastRound),
      missedRounds: Number(missed),
      lastSeenMs: seen ? Number(seen) : null,
    });
  }
  return claimed;
}

/** Connected devices of shards `of`, and how many were not heard in round n (or later). */
async function silence(
  ctx: Ctx,
  n: number,
  of: readonly number[],
  excluding: readonly string[],
): Promise<{ connected: number; missed: number }> {
  const skip = ctx.byShard(excluding, (id) => id);
  const counts = await Promise.all(
    of.map(async (s) => {
      const k = ctx.keys.shard(s);
      const ids = skip.get(s) ?? [];
      const [connected, missed, left] = await Promise.all([
        ctx.redis.zcard(k.heard),
        ctx.redis.zcount(k.heard, '-inf', `(${n}`),
        ids.length > 0 ? ctx.redis.zmscore(k.heard, ...ids) : Promise.resolve([]),
      ]);
      const indexed = left.filter((x): x is string => x !== null);
      return {
        connected: connected - indexed.length,
        missed: missed - indexed.filter((x) => Number(x) < n).length,
      };
    }),
  );
  return counts.reduce((a, c) => ({ connected: a.connected + c.connected, missed: a.missed + c.missed }), {
    connected: 0,
    missed: 0,
  });
}

/** Claims of stale devices, by the evaluation of a round. */
function claimsOf(ctx: Ctx) {
  const { redis, keys, byShard, allShards } = ctx;
  return {
    /**
     * Claims, for the evaluation of round n, the devices past their policy's allowance: the devices
     * silent longer than `strictest` valid rounds of their shard are read a page at a time and judged
     * (by their own policy) by `judge`; those it finds stale are claimed, unless heard meanwhile.
     * Returns what is claimed for round n and not yet released, up to about `limit`. Costs the devices
     * silent past the strictest allowance, not the fleet.
     */
    async claimStale(n: number, strictest: number, limit: number, judge: Judge): Promise<Claimed[]> {
      const page = (s: number, offset: number) => candidatePage(ctx, n, strictest, s, offset);
      // Every shard's first page at once, judged at once: a quiet round costs one call per shard, side
      // by side, and a round with candidates one judgement (what a first page says may be stale by its
      // shard's turn; a claim checks each device again).
      const firstPages = await Promise.all(allShards.map((s) => page(s, 0)));
      const firstStale = await judge(firstPages);
      const claimed: Claimed[] = [];
      for (const s of allShards) {
        if (claimed.length >= limit) break;
        const want = limit - claimed.length;
        let current = firstPages[s]!;
        let stale = firstStale[s]!;
        let anyClaimed = current.claims > 0;
        for (let offset = 0, taken = 0; current.candidates.length > 0 && taken < want;) {
          if (stale.length > 0) await claim(ctx, n, s, stale);
          taken += stale.length;
          anyClaimed ||= stale.length > 0;
          offset += current.candidates.length - stale.length;
          if (current.candidates.length < CANDIDATE_PAGE) break;
          current = await page(s, offset);
          stale = (await judge([current]))[0]!;
          anyClaimed ||= current.claims > 0;
        }
        if (anyClaimed) claimed.push(...(await claimsOfShard(ctx, n, s, want)));
      }
      return claimed;
    },

    async releaseClaims(n: number, deviceIds: readonly string[]): Promise<void> {
      await Promise.all(
        [...byShard(deviceIds, (id) => id)].map(([s, ids]) => redis.hdel(keys.shard(s).claimed(n), ...ids)),
      );
    },
  };
}

export type Liveness = ReturnType<typeof createLiveness>;
