import type { RedisClient as Redis } from './connection';

export interface AttemptLimiter {
  /**
   * Takes one attempt of the address's window before it is checked: 0 when taken, else the seconds
   * until it may try again (nothing taken). Concurrent attempts cannot all see room that is not there.
   */
  reserve(address: string): Promise<number>;
  /** The attempt succeeded: it is not a failure, and goes back. */
  release(address: string): Promise<void>;
}

/** Takes an attempt, or gives the window's remaining milliseconds when all `max` are taken. */
const RESERVE = `
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n <= tonumber(ARGV[1]) then return 0 end
redis.call('DECR', KEYS[1])
return math.max(1, redis.call('PTTL', KEYS[1]))
`;

/** Gives an attempt back; never below zero, and not into a window that has ended. */
const RELEASE = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then redis.call('DECR', KEYS[1]) end
return 0
`;

type LimiterRedis = Redis & {
  rollcallReserveAttempt(key: string, max: number, windowMs: number): Promise<number>;
  rollcallReleaseAttempt(key: string): Promise<number>;
};

/**
 * Fixed-window attempt counter in Redis, so the limit holds across every web replica. Each attempt
 * is taken before it is checked and given back if it succeeds: after `max` failures (or `max`
 * checks in flight) in `windowSeconds`, the address is refused for the rest of the window.
 */
export function createAttemptLimiter(
  redis: Redis,
  keyOf: (address: string) => string,
  max: number,
  windowSeconds: number,
): AttemptLimiter {
  redis.defineCommand('rollcallReserveAttempt', { numberOfKeys: 1, lua: RESERVE });
  redis.defineCommand('rollcallReleaseAttempt', { numberOfKeys: 1, lua: RELEASE });
  const r = redis as LimiterRedis;
  return {
    async reserve(address) {
      const waitMs = Number(await r.rollcallReserveAttempt(keyOf(address), max, windowSeconds * 1000));
      return waitMs === 0 ? 0 : Math.ceil(waitMs / 1000);
    },
    async release(address) {
      await r.rollcallReleaseAttempt(keyOf(address));
    },
  };
}
