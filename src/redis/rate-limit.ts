import type { RedisClient as Redis } from './connection';
import type { KeySpace } from './key-space';
import { defineScripts } from './scripts';

/**
 * Wrong credentials counted per address: registration secrets, and operator tokens apart; and every
 * request a device makes with its own token, per device.
 */
export const rateLimitKeys = (space: KeySpace) => ({
  badSecret: (address: string) => space.fleet(`rate:bad-secret:${address}`),
  badCredential: (address: string) => space.fleet(`rate:bad-credential:${address}`),
  deviceRequests: (deviceId: string) => space.fleet(`rate:device:${deviceId}`),
  refusalNotice: (deviceId: string) => space.fleet(`rate:refusal-notice:${deviceId}`),
});

/**
 * Once per window per id, whichever process asks first (SET NX with an expiry): true for the one
 * that may act.
 */
export function createOncePer(redis: Redis, keyOf: (id: string) => string, windowMs: number) {
  return async (id: string): Promise<boolean> =>
    (await redis.set(keyOf(id), '1', 'PX', windowMs, 'NX')) === 'OK';
}

export interface AttemptLimiter {
  /** Seconds until this address may try again, or 0 when it is not blocked. */
  blockedFor(address: string): Promise<number>;
  /**
   * Records one failure: 0 when it is within the limit (the caller may say it failed), else the
   * seconds until the address may try again. One atomic step, so failures that come at once are
   * counted in order and only `max` of them are ever within the limit.
   */
  fail(address: string): Promise<number>;
}

type LimiterRedis = Redis & {
  rollcallCountFailure(key: string, max: number, windowMs: number): Promise<number>;
};

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
  defineScripts(redis);
  const r = redis as LimiterRedis;
  return {
    async blockedFor(address) {
      // One GET on the path every good registration takes; the window's end only once blocked (a key
      // that expired in between reads as 1 s, which errs on the side of blocking).
      if (Number((await redis.get(keyOf(address))) ?? 0) < max) return 0;
      return Math.max(1, Math.ceil((await redis.pttl(keyOf(address))) / 1000));
    },
    async fail(address) {
      const waitMs = Number(await r.rollcallCountFailure(keyOf(address), max, windowSeconds * 1000));
      return waitMs === 0 ? 0 : Math.ceil(waitMs / 1000);
    },
  };
}
