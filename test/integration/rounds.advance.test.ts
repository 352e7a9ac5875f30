import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRedis, type RedisClient } from '../../src/redis/connection';
import { redisKeys } from '../../src/redis/keys';
import { createRounds } from '../../src/redis/rounds';
import { uniquePrefix } from '../support/database';

let redis: RedisClient;
beforeAll(() => {
  redis = createRedis(inject('redisUrl'), 'producer');
});
afterAll(() => redis.disconnect());

function fresh() {
  const keys = redisKeys(uniquePrefix());
  return { keys, rounds: createRounds(redis, keys, 4) };
}

describe('issuing a round number', () => {
  it('issues each tick once; a re-run gets the same number and keeps the first facts', async () => {
    const { rounds } = fresh();
    expect(await rounds.advance('tick-a', 10_000, 10_010, 800, 1)).toEqual({ round: 1, fresh: true });
    const first = await rounds.meta(1);
    expect(first).toMatchObject({ round: 1, issuedAt: 10_010, intervalSeconds: 1 });
    expect(first!.nonce).toMatch(/.+/);
    expect(await rounds.advance('tick-a', 10_000, 10_500, 800, 1)).toEqual({ round: 1, fresh: false });
    expect(await rounds.meta(1)).toEqual(first);
    // Too soon after the last tick: no number; a tick far enough after gets the next one.
    expect(await rounds.advance('tick-b', 10_500, 10_510, 800, 1)).toEqual({ round: 0, fresh: false });
    expect(await rounds.advance('tick-c', 11_000, 11_005, 800, 1)).toEqual({ round: 2, fresh: true });
    expect(await rounds.meta(2)).toMatchObject({ issuedAt: 11_005 });
  });

  it('a re-run writes the facts a crash between the two steps left unwritten', async () => {
    const { keys, rounds } = fresh();
    await rounds.advance('tick-a', 10_000, 10_010, 800, 1);
    await redis.del(keys.rounds.meta(1));
    expect(await rounds.meta(1)).toBeNull();
    expect(await rounds.advance('tick-a', 10_000, 10_700, 800, 2)).toEqual({ round: 1, fresh: false });
    expect(await rounds.meta(1)).toMatchObject({ round: 1, issuedAt: 10_700, intervalSeconds: 2 });
  });
});
