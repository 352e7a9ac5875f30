import { keySpace } from './key-space';
import { livenessKeys } from './liveness';
import { rateLimitKeys } from './rate-limit';
import { roundKeys } from './rounds';
import { leaseKeys } from './shard-leases';

/**
 * Every Redis key of ours, by the module that owns it (see key-space.ts for the naming). Each module
 * builds its own keys and takes only those; this file only gathers them for the roles' wiring.
 */
export function redisKeys(prefix: string) {
  const space = keySpace(prefix);
  return {
    liveness: livenessKeys(space),
    rounds: roundKeys(space),
    leases: leaseKeys(space),
    rateLimits: rateLimitKeys(space),
  };
}
export type RedisKeys = ReturnType<typeof redisKeys>;
