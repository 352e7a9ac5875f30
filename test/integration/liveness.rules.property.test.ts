import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { staleAmong } from '../../src/domain/policy';
import { missedValidRounds } from '../../src/domain/rounds';
import { shardOf } from '../../src/domain/shards';
import { createRedis, type RedisClient } from '../../src/redis/connection';
import { redisKeys } from '../../src/redis/keys';
import { createLiveness, type Judge } from '../../src/redis/liveness';
import { createRounds } from '../../src/redis/rounds';
import { uniquePrefix } from '../support/database';

// The Lua of src/redis/liveness.ts against the round rules of src/domain/rounds.ts, on random cases:
// rounds valid or void per shard, devices last heard in random rounds, each allowed its own number of
// misses. What Redis claims at round n must be exactly the devices the rules call stale, each with
// the misses the rules count; the rest stay in the connected index.

const SHARDS = 4;
let redis: RedisClient;
beforeAll(() => {
  redis = createRedis(inject('redisUrl'), 'producer');
});
afterAll(() => redis.disconnect());

const cases = fc.record({
  n: fc.integer({ min: 1, max: 40 }),
  // Per round, the shards it was valid for (the others: void there).
  validity: fc.array(fc.subarray([0, 1, 2, 3]), { minLength: 40, maxLength: 40 }),
  devices: fc.array(
    fc.record({ lastRound: fc.integer({ min: 0, max: 40 }), allowed: fc.integer({ min: 0, max: 8 }) }),
    { minLength: 1, maxLength: 30 },
  ),
});

describe('the liveness scripts follow the round rules', () => {
  it('claim exactly the devices past their allowance at round n, with the misses the rules count', async () => {
    await fc.assert(
      fc.asyncProperty(cases, async ({ n, validity, devices }) => {
        const keys = redisKeys(uniquePrefix());
        const liveness = createLiveness(redis, keys, SHARDS);
        const rounds = createRounds(redis, keys, SHARDS);
        const ids = devices.map((_, i) => `dev-${i}`);
        const allowed = new Map(devices.map((d, i) => [ids[i]!, d.allowed]));
        const last = new Map(devices.map((d, i) => [ids[i]!, Math.min(d.lastRound, n)]));
        for (let r = 1; r <= n; r++) await rounds.close(r, validity[r - 1]!);
        await liveness.cacheTokens(ids.map((id) => ({ tokenHash: `h-${id}`, deviceId: id })));
        for (const id of ids)
          await liveness.recordHeartbeats([
            { tokenHash: `h-${id}`, deviceId: id, heardRound: last.get(id)! },
          ]);
        const strictest = Math.min(...allowed.values());
        const judge: Judge = (pages) =>
          Promise.resolve(
            pages.map((p) => staleAmong(n, p.candidates, p.validRounds, (id) => allowed.get(id)!)),
          );
        const claimed = await liveness.claimStale(n, strictest, 1000, judge);

        const validOf = (id: string) =>
          Array.from({ length: n }, (_, i) => i + 1).filter((r) =>
            validity[r - 1]!.includes(shardOf(id, SHARDS)),
          );
        const expected = ids
          .map((id) => ({ id, missed: missedValidRounds(last.get(id)!, n, validOf(id)) }))
          .filter((d) => d.missed > allowed.get(d.id)!);
        expect(claimed.map((c) => [c.deviceId, c.missedRounds]).sort()).toEqual(
          expected.map((d) => [d.id, d.missed]).sort(),
        );
        const kept = await liveness.indexedMany(ids);
        expect([...kept.keys()].sort()).toEqual(
          ids.filter((id) => !expected.some((d) => d.id === id)).sort(),
        );
      }),
      { numRuns: 60 },
    );
  });
});
