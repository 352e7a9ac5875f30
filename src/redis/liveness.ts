import type { Redis, Result } from 'ioredis';
import type { RedisKeys } from './connection';

/** What a batch of heartbeats did, as decided atomically in Redis. */
export interface HeardBatch {
  /** Heartbeats that counted for the round open when they arrived (the fresh ones included). */
  heard: number;
  /** Echoes of a round older than the open one: they do not count. */
  stale: number;
  /** Rotated or deleted tokens, refused without a lookup. */
  revoked: number;
  /** Token hashes the cache does not know, one per heartbeat: the caller resolves them from Postgres. */
  readonly unknown: string[];
  /** Devices that were not in the connected index (a first or recovered heartbeat), once each. */
  readonly fresh: { deviceId: string; round: number }[];
}

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
// step, and an answer that names only the exceptions: this is the hot path of the whole service.
// ARGV: now, the echoed rounds ('' when none echoed, else one comma-separated field per heartbeat,
// empty where none), then one token hash per heartbeat. Returns round, stale, revoked, the number of
// unknown hashes, their positions (1-based), then the id of each device absent from the index.
const INGEST = `
local round = tonumber(redis.call('GET', KEYS[4]) or '0')
local now, n = ARGV[1], #ARGV - 2
local hashes = {}
for i = 1, n do hashes[i] = ARGV[i + 2] end
local ids = redis.call('HMGET', KEYS[1], unpack(hashes))
local echoes = {}
if ARGV[2] ~= '' then
  local i = 0
  for e in string.gmatch(ARGV[2] .. ',', '([^,]*),') do i = i + 1; echoes[i] = e end
end
local stale, revoked, unknown = 0, 0, {}
local live, scored, seen, k = {}, {}, {}, 0
for i = 1, n do
  local id = ids[i]
  if not id then unknown[#unknown + 1] = i
  elseif id == '-' then revoked = revoked + 1
  elseif echoes[i] and echoes[i] ~= '' and tonumber(echoes[i]) < round then stale = stale + 1
  else
    k = k + 1
    live[k] = id
    scored[2 * k - 1] = round
    scored[2 * k] = id
    seen[2 * k - 1] = id
    seen[2 * k] = now
  end
end
local out = {round, stale, revoked, #unknown}
for j = 1, #unknown do out[#out + 1] = unknown[j] end
if k > 0 then
  local prev = redis.call('ZMSCORE', KEYS[2], unpack(live))
  local fresh = {}
  for j = 1, k do
    local id = live[j]
    if not prev[j] and not fresh[id] then
      fresh[id] = true
      out[#out + 1] = id
    end
  end
  redis.call('ZADD', KEYS[2], 'GT', unpack(scored))
  redis.call('HSET', KEYS[3], unpack(seen))
end
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
    ): Result<(number | string)[], Context>;
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

/** The hot liveness state in Redis: token cache, connected index, last-seen times, claims. */
export function createLiveness(redis: Redis, keys: RedisKeys) {
  redis.defineCommand('rollcallIngest', { numberOfKeys: 4, lua: INGEST });
  redis.defineCommand('rollcallClaim', { numberOfKeys: 4, lua: CLAIM });

  return {
    /** Records a batch of heartbeats; one round trip per INGEST_CHUNK heartbeats. */
    async recordHeartbeats(batch: readonly HeartbeatInput[], nowMs = Date.now()): Promise<HeardBatch> {
      const out: HeardBatch = { heard: 0, stale: 0, revoked: 0, unknown: [], fresh: [] };
      for (let start = 0; start < batch.length; start += INGEST_CHUNK) {
        const chunk = batch.length <= INGEST_CHUNK ? batch : batch.slice(start, start + INGEST_CHUNK);
        const echoes = chunk.some((h) => h.round !== undefined)
          ? chunk.map((h) => (h.round === undefined ? '' : String(h.round))).join(',')
          : '';
        const reply = await redis.rollcallIngest(
          keys.tokens,
          keys.heard,
          keys.lastSeen,
          keys.round,
          String(nowMs),
          echoes,
          ...chunk.map((h) => h.tokenHash),
        );
        const [round, stale, revoked, unknown] = reply.slice(0, 4).map(Number) as [
          number,
          number,
          number,
          number,
        ];
        for (let i = 4; i < 4 + unknown; i++) out.unknown.push(chunk[Number(reply[i]) - 1]!.tokenHash);
        for (let i = 4 + unknown; i < reply.length; i++)
          out.fresh.push({ deviceId: String(reply[i]), round });
        out.heard += chunk.length - stale - revoked - unknown;
        out.stale += stale;
        out.revoked += revoked;
      }
      return out;
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
