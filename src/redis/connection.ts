import { Cluster, Redis, type RedisOptions } from 'ioredis';

export type { Redis };
/** A single Redis or a Redis Cluster: nothing of ours needs what one has and the other lacks. */
export type RedisClient = Redis | Cluster;

/** Where Redis is: a URL, and whether it names a node of a Redis Cluster (REDIS_CLUSTER). */
export interface RedisTarget {
  readonly url: string;
  readonly cluster: boolean;
}

function redisOptions(role: 'producer' | 'worker', name?: string): RedisOptions {
  const common: RedisOptions = {
    connectionName: name,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    lazyConnect: false,
  };
  return role === 'worker'
    ? { ...common, maxRetriesPerRequest: null, enableReadyCheck: true }
    : { ...common, maxRetriesPerRequest: 1, enableOfflineQueue: true, connectTimeout: 3000 };
}

/**
 * Producers (the web process, publishers) fail fast so a request never hangs on a Redis outage;
 * workers and blocking connections wait and reconnect for as long as it takes (BullMQ requires
 * `maxRetriesPerRequest: null` there). On a cluster the URL is the node the client starts from.
 */
export function createRedis(
  target: string | RedisTarget,
  role: 'producer' | 'worker',
  name?: string,
): RedisClient {
  const { url, cluster } = typeof target === 'string' ? { url: target, cluster: false } : target;
  const options = redisOptions(role, name);
  if (!cluster) return new Redis(url, options);
  const seed = new URL(url);
  const { username, password } = seed;
  return new Cluster([{ host: seed.hostname, port: Number(seed.port || 6379) }], {
    redisOptions: {
      ...options,
      ...(username ? { username: decodeURIComponent(username) } : {}),
      ...(password ? { password: decodeURIComponent(password) } : {}),
    },
    clusterRetryStrategy: (times) => Math.min(times * 200, 2000),
    enableOfflineQueue: true,
  });
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
    badCredential: (address: string) => k(`rate:bad-credential:${address}`),
    shard,
    /** The number of shards the liveness state is kept in (every process must agree). */
    shardCount: k('shards'),
    /** Which gateway holds which shard, and since when it has held every session of it. */
    shardLeases: k('shard-leases'),
    /** Per round: which gateway opened it on which shard, and when. */
    roundOpened: (n: number) => k(`round:${n}:opened`),
    /** Pub/sub channel announcing each issued round to every gateway. */
    roundsIssued: k('rounds-issued'),
    /** Pub/sub channel telling every gateway of a revoked token: `{deviceId, tokenHash}`. */
    tokensRevoked: k('tokens-revoked'),
    round: k('round'),
    roundMeta: (n: number) => k(`round:${n}`),
    gateways: k('gateways'),
    livenessSeeded: k('liveness:seeded'),
    livenessSeedLock: k('liveness:seed-lock'),
    schedulerEvery: k('scheduler:every'),
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;
