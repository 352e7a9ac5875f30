import { Redis, type RedisOptions } from 'ioredis';

export type { Redis };

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

/** Redis keys of our own (not BullMQ's), under the queue prefix so a `{tag}` prefix keeps them in one slot. */
export function redisKeys(prefix: string) {
  const k = (name: string) => `${prefix}:${name}`;
  return {
    badSecret: (address: string) => k(`rate:bad-secret:${address}`),
    tokens: k('tokens'),
    heard: k('heard'),
    lastSeen: k('last-seen'),
    round: k('round'),
    roundMeta: (n: number) => k(`round:${n}`),
    validRounds: k('rounds:valid'),
    claimed: (n: number) => k(`claimed:${n}`),
    gateways: k('gateways'),
    livenessSeeded: k('liveness:seeded'),
    livenessSeedLock: k('liveness:seed-lock'),
    schedulerEvery: k('scheduler:every'),
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;
