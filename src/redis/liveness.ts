import type { Redis, Result } from 'ioredis';
import type { RedisKeys } from './connection';

/** Outcome of one heartbeat, as decided atomically in Redis. */
export type HeardResult =
  /** Not in the cache: the caller resolves it from Postgres. */
  | { kind: 'unknown'; tokenHash: string }
  /** A rotated or deleted token: refused without a lookup. */
  | { kind: 'revoked'; tokenHash: string }
  /** The device echoed a round older than the one open now. */
  | { kind: 'stale' }
  | { kind: 'heard'; round: number }
  /** The device was not in the connected index: it may be a first or recovered heartbeat. */
  | { kind: 'new'; deviceId: string; round: number };

export interface HeartbeatInput {
  readonly tokenHash: string;
  /** The round the device echoed, if it did. */
  readonly round?: number | undefined;
}

export interface Claimed {
  readonly deviceId: string;
  readonly lastRound: number;
  readonly missedRounds: number;
  readonly lastSeenMs: number | null;
}

// Records a batch of heartbeats in one round trip: resolves each token hash through the cache,
// stamps the device with the round open right now (read here, so no process needs a clock or a
// cached round), and says which devices were absent from the connected index. One bulk command per
// step (not one per heartbeat): this is the hot path of the whole service.
// ARGV: now, then (token hash, echoed round or '') pairs. Returns the round, one code per heartbeat
// (u unknown, x revoked, s stale echo, h heard, n new), and the device id of each n, in order.
const INGEST = `
local round = tonumber(redis.call('GET', KEYS[4]) or '0')
local n = (#ARGV - 1) / 2
local hashes = {}
for i = 1, n do hashes[i] = ARGV[2 * i] end
local ids = redis.call('HMGET', KEYS[1], unpack(hashes))
local codes, live, at = {}, {}, {}
for i = 1, n do
  local id, echo = ids[i], ARGV[2 * i + 1]
  if not id then codes[i] = 'u'
  elseif id == '-' then codes[i] = 'x'
  elseif echo ~= '' and tonumber(echo) < round then codes[i] = 's'
  else
    codes[i] = 'h'
    live[#live + 1] = id
    at[#live] = i
  end
end
local out = {round, ''}
if #live > 0 then
  local prev = redis.call('ZMSCORE', KEYS[2], unpack(live))
  local scored, seen, fresh = {}, {}, {}
  for j = 1, #live do
    local id = live[j]
    if not prev[j] and not fresh[id] then
      fresh[id] = true
      codes[at[j]] = 'n'
      out[#out + 1] = id
    end
    scored[2 * j - 1] = round
    scored[2 * j] = id
    seen[2 * j - 1] = id
    seen[2 * j] = ARGV[1]
  end
  redis.call('ZADD', KEYS[2], 'GT', unpack(scored))
  redis.call('HSET', KEYS[3], unpack(seen))
end
out[2] = table.concat(codes)
return out`;

// Moves the devices that missed more than max consecutive valid rounds out of the connected index
// into a claim list for round n, atomically, and returns the claim list (including what a crashed
// earlier run claimed). ARGV: n, max, limit.
const CLAIM = `
local n = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local v = redis.call('ZREVRANGEBYSCORE', KEYS[2], n, '-inf', 'LIMIT', max, 1)[1]
if v then
  local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. v, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
  for i = 1, #stale, 2 do
    local missed = redis.call('ZCOUNT', KEYS[2], '(' .. stale[i + 1], n)
    redis.call('ZREM', KEYS[1], stale[i])
    redis.call('HSET', KEYS[3], stale[i], stale[i + 1] .. ':' .. missed)
  end
  redis.call('EXPIRE', KEYS[3], 86400)
end
local claimed = redis.call('HSCAN', KEYS[3], 0, 'COUNT', tonumber(ARGV[3]))[2]
local out = {}
for i = 1, #claimed, 2 do
  table.insert(out, claimed[i]); table.insert(out, claimed[i + 1])
  table.insert(out, redis.call('HGET', KEYS[4], claimed[i]) or '')
end
return out`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    rollcallIngest(
      tokens: string,
      heard: string,
      lastSeen: string,
      round: string,
      ...args: string[]
    ): Result<[number, string, ...string[]], Context>;
    rollcallClaim(
      heard: string,
      valid: string,
      claimed: string,
      lastSeen: string,
      ...args: string[]
    ): Result<string[], Context>;
  }
}

/** Heartbeats per INGEST call: Lua's unpack() is limited to a few thousand values. */
const INGEST_CHUNK = 1000;

function heardResult(
  code: string | undefined,
  h: HeartbeatInput,
  round: number,
  freshId: () => unknown,
): HeardResult {
  if (code === 'u') return { kind: 'unknown', tokenHash: h.tokenHash };
  if (code === 'x') return { kind: 'revoked', tokenHash: h.tokenHash };
  if (code === 's') return { kind: 'stale' };
  if (code === 'n') return { kind: 'new', deviceId: String(freshId()), round };
  return { kind: 'heard', round };
}

/** The hot liveness state in Redis: token cache, connected index, last-seen times, claims. */
export function createLiveness(redis: Redis, keys: RedisKeys) {
  redis.defineCommand('rollcallIngest', { numberOfKeys: 4, lua: INGEST });
  redis.defineCommand('rollcallClaim', { numberOfKeys: 4, lua: CLAIM });

  return {
    /** Records a batch of heartbeats; one round trip per INGEST_CHUNK heartbeats. */
    async recordHeartbeats(batch: readonly HeartbeatInput[], nowMs = Date.now()): Promise<HeardResult[]> {
      const results: HeardResult[] = [];
      for (let start = 0; start < batch.length; start += INGEST_CHUNK) {
        const chunk = batch.slice(start, start + INGEST_CHUNK);
        const args = chunk.flatMap((h) => [h.tokenHash, h.round === undefined ? '' : String(h.round)]);
        const [round, codes, ...fresh] = await redis.rollcallIngest(
          keys.tokens,
          keys.heard,
          keys.lastSeen,
          keys.round,
          String(nowMs),
          ...args,
        );
        let f = 0;
        chunk.forEach((h, i) =>
          results.push(heardResult(String(codes)[i], h, Number(round), () => fresh[f++])),
        );
      }
      return results;
    },

    /**
     * Caches token hash -> device id, so heartbeats resolve without Postgres. Never overwrites an
     * entry: a lookup that raced with a rotation cannot bring a revoked token back.
     */
    async cacheTokens(entries: readonly { tokenHash: string; deviceId: string }[]): Promise<void> {
      if (entries.length === 0) return;
      const tx = redis.multi();
      for (const e of entries) tx.hsetnx(keys.tokens, e.tokenHash, e.deviceId);
      await tx.exec();
    },

    /** Revokes a token hash in the cache (a tombstone, so no racing lookup can re-cache it). */
    async forgetToken(tokenHash: string): Promise<void> {
      await redis.hset(keys.tokens, tokenHash, '-');
    },

    /** Removes a device from the connected index (deleted, or its connect transition failed). */
    async forgetDevice(deviceId: string): Promise<void> {
      await redis.multi().zrem(keys.heard, deviceId).hdel(keys.lastSeen, deviceId).exec();
    },

    async lastHeardAt(deviceId: string): Promise<Date | null> {
      const ms = await redis.hget(keys.lastSeen, deviceId);
      return ms ? new Date(Number(ms)) : null;
    },

    /** Last heartbeat times (epoch ms) of many devices, one round trip. */
    async lastHeardMany(deviceIds: readonly string[]): Promise<Map<string, number>> {
      if (deviceIds.length === 0) return new Map();
      const values = await redis.hmget(keys.lastSeen, ...deviceIds);
      const out = new Map<string, number>();
      deviceIds.forEach((id, i) => {
        if (values[i]) out.set(id, Number(values[i]));
      });
      return out;
    },

    /** Which of these devices are in the connected index, and with which heard round (one round trip). */
    async indexedMany(deviceIds: readonly string[]): Promise<Map<string, number>> {
      if (deviceIds.length === 0) return new Map();
      const scores = await redis.zmscore(keys.heard, ...deviceIds);
      const out = new Map<string, number>();
      deviceIds.forEach((id, i) => {
        if (scores[i] !== null && scores[i] !== undefined) out.set(id, Number(scores[i]));
      });
      return out;
    },

    /** Connected devices, and how many of them were not heard in round n (or later). */
    async silenceOf(n: number): Promise<{ connected: number; missed: number }> {
      const [connected, missed] = (await redis
        .multi()
        .zcard(keys.heard)
        .zcount(keys.heard, '-inf', `(${n}`)
        .exec())!.map(([err, v]) => {
        if (err) throw err;
        return Number(v);
      });
      return { connected: connected!, missed: missed! };
    },

    /** Puts connected devices into the index as heard in `round`, unless already there. */
    async seed(deviceIds: readonly string[], round: number): Promise<void> {
      if (deviceIds.length === 0) return;
      await redis.zadd(keys.heard, 'NX', ...deviceIds.flatMap((id) => [round, id]));
    },

    /**
     * Claims, for the evaluation of round n, the devices whose consecutive valid misses exceed max.
     * Returns everything claimed for round n and not yet released, up to `limit` entries.
     */
    async claimStale(n: number, max: number, limit: number): Promise<Claimed[]> {
      const out = await redis.rollcallClaim(
        keys.heard,
        keys.validRounds,
        keys.claimed(n),
        keys.lastSeen,
        String(n),
        String(max),
        String(limit),
      );
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
    },

    async releaseClaims(n: number, deviceIds: readonly string[]): Promise<void> {
      if (deviceIds.length > 0) await redis.hdel(keys.claimed(n), ...deviceIds);
    },
  };
}
export type Liveness = ReturnType<typeof createLiveness>;
