import { Redis, type Cluster, type RedisOptions } from 'ioredis';

export type { Redis };
/** A single Redis or a Redis Cluster: the liveness state needs nothing one has and the other lacks. */
export type RedisClient = Redis | Cluster;

/**
 * Producers (the web process, publishers) fail fast so a request never hangs on a Redis outage;
 * workers and blocking connections wait and reconnect for as long as it takes (BullMQ requires
 * `maxRetriesPerRequest: null` there).
 */
export function createRedis(url: string, role: 'producer' | 'worker', name?: string): Redis {
  const common: RedisOptions = {
    connectionName: name,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    lazyConnect: false,
  };
  return role === 'worker'
    ? new Redis(url, { ...common, maxRetriesPerRequest: null, enableReadyCheck: true })
    : new Redis(url, { ...common, maxRetriesPerRequest: 1, enableOfflineQueue: true, connectTimeout: 3000 });
}

/**
 * Redis keys of our own (not BullMQ's). Fleet-wide keys live under the queue prefix (a `{tag}` prefix
 * keeps them in one slot). The liveness state is per shard: each shard's keys share the hash tag
 * `{s<n>}` (the prefix's own braces removed), so on a Redis Cluster the shards spread over the masters
 * and every script touches one slot.
 */
export function redisKeys(prefix: string) {
  const k = (name: string) => `${prefix}:${name}`;
  const bare = prefix.replace(/[{}]/g, '');
  const shard = (s: number) => {
    const sk = (name: string) => `${bare}:{s${s}}:${name}`;
    return {
      tokens: sk('tokens'),
      heard: sk('heard'),
      lastSeen: sk('last-seen'),
      validRounds: sk('rounds:valid'),
      claimed: (n: number) => sk(`claimed:${n}`),
    };
  };
  return {
    badSecret: (address: string) => k(`rate:bad-secret:${address}`),
    shard,
    /** The number of shards the liveness state is kept in (every process must agree). */
    shardCount: k('shards'),
    /** Which gateway holds which shard, and since when it has held every session of it. */
    shardLeases: k('shard-leases'),
    /** Per round: which gateway opened it on which shard, and when. */
    roundOpened: (n: number) => k(`round:${n}:opened`),
    /** Pub/sub channel announcing each issued round to every gateway. */
    roundsIssued: k('rounds-issued'),
    round: k('round'),
    roundMeta: (n: number) => k(`round:${n}`),
    gateways: k('gateways'),
    livenessSeeded: k('liveness:seeded'),
    livenessSeedLock: k('liveness:seed-lock'),
    schedulerEvery: k('scheduler:every'),
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;
