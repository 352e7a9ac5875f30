import { listenFor, STREAMS_NUMBERED } from '../db/notifications';
import { findDeviceIdByTokenHash } from '../db/devices';
import type { Db } from '../db/knex';
import { createEventSigner } from '../db/signing-keys';
import type { NumberedEvent } from '../domain/events';
import type { Logger } from '../logger';
import type { RedisClient } from '../redis/connection';
import { redisKeys } from '../redis/keys';
import { createAttemptLimiter, type AttemptLimiter } from '../redis/rate-limit';

/** A fixed-window count: `max` in `windowSeconds`. */
export interface Limit {
  readonly max: number;
  readonly windowSeconds: number;
}

/** What the HTTP part counts per caller: wrong secrets, wrong operator credentials, a device's requests. */
export type LimitedAttempt = 'badSecret' | 'badCredential' | 'deviceRequests';

/**
 * What the HTTP part takes of Postgres and Redis beside its operations: which device a token hash
 * names, the rate limits, the event signer, and the numbering notifications its live feed wakes on.
 * Built here so the HTTP part names no store (src/http imports src/db and src/redis for types only).
 */
export function createHttpPorts(deps: { db: Db; redis: RedisClient; queuePrefix: string; logger: Logger }) {
  const keys = redisKeys(deps.queuePrefix).rateLimits;
  const signer = createEventSigner(deps.db);
  return {
    deviceIdByTokenHash: (hash: string) => findDeviceIdByTokenHash(deps.db, hash),
    limiter: (attempt: LimitedAttempt, limit: Limit): AttemptLimiter =>
      createAttemptLimiter(deps.redis, keys[attempt], limit.max, limit.windowSeconds),
    sign: (event: NumberedEvent) => signer.sign(event),
    /** Wakes `wake` at each numbering (a Postgres notification); a lost one is told and polled for. */
    onNumbered: (wake: () => void) =>
      listenFor(deps.db, STREAMS_NUMBERED, wake, (err) =>
        deps.logger.warn(
          { err: err.message },
          'live feed lost the numbering notifications; polling meanwhile',
        ),
      ),
  };
}

export type HttpPorts = ReturnType<typeof createHttpPorts>;
