import type { RedisClient as Redis } from './connection';

export interface AttemptLimiter {
  /** Seconds until this address may try again, or 0 when it is not blocked. */
  blockedFor(address: string): Promise<number>;
  /** Records one failure for the address. */
  fail(address: string): Promise<void>;
}

/**
 * Fixed-window failure counter in Redis, so the limit holds across every web replica.
 * After `max` failures in `windowSeconds` the address is blocked for the rest of the window.
 */
export function createAttemptLimiter(
  redis: Redis,
  keyOf: (address: string) => string,
  max: number,
  windowSeconds: number,
): AttemptLimiter {
  return {
    async blockedFor(address) {
      // One GET on the path every registration takes; the window's end only once blocked (a key that
      // expired in between reads as 1 s, which errs on the side of blocking).
      if (Number((await redis.get(keyOf(address))) ?? 0) < max) return 0;
      return Math.max(1, Math.ceil((await redis.pttl(keyOf(address))) / 1000));
    },
    async fail(address) {
      await redis
        .multi()
        .incr(keyOf(address))
        .pexpire(keyOf(address), windowSeconds * 1000, 'NX')
        .exec()
        .then(unwrap);
    },
  };
}

function unwrap(results: [Error | null, unknown][] | null): unknown[] {
  if (!results) throw new Error('redis transaction aborted');
  return results.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}
