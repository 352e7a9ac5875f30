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
