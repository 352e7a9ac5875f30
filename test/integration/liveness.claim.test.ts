import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { createRedis, redisKeys, type Redis } from '../../src/redis/connection';
import { createLiveness, type Liveness } from '../../src/redis/liveness';
import { createRounds } from '../../src/redis/rounds';
import { uniquePrefix } from '../support/database';

let redis: Redis;
beforeAll(() => {
  redis = createRedis(inject('redisUrl'), 'producer');
});
afterAll(() => redis.disconnect());

function fresh() {
  const keys = redisKeys(uniquePrefix());
  return { keys, liveness: createLiveness(redis, keys), rounds: createRounds(redis, keys) };
}

async function heardIn(l: Liveness, keys: ReturnType<typeof redisKeys>, round: number, devices: string[]) {
  await redis.set(keys.round, round);
  await l.cacheTokens(devices.map((d) => ({ tokenHash: `h-${d}`, deviceId: d })));
  await l.recordHeartbeats(devices.map((d) => ({ tokenHash: `h-${d}` })));
}

describe('miss counting in Redis', () => {
  it('claims exactly the devices past max consecutive valid misses, with their miss count', async () => {
    const { keys, liveness, rounds } = fresh();
    await heardIn(liveness, keys, 2, ['c']);
    await heardIn(liveness, keys, 3, ['b']);
    await heardIn(liveness, keys, 5, ['a']);
    for (let n = 1; n <= 6; n++) await rounds.close(n, 'valid');
    const claimed = await liveness.claimStale(6, 2, 100);
    expect(claimed.map((c) => [c.deviceId, c.lastRound, c.missedRounds]).sort()).toEqual([
      ['b', 3, 3],
      ['c', 2, 4],
    ]);
    expect((await liveness.indexedMany(['a'])).get('a')).toBe(5);
    expect((await liveness.indexedMany(['b'])).has('b')).toBe(false);
  });

  it('a void round is a miss for nobody', async () => {
    const { keys, liveness, rounds } = fresh();
    await heardIn(liveness, keys, 2, ['c']);
    await heardIn(liveness, keys, 3, ['b']);
    for (const n of [1, 2, 3, 5, 6]) await rounds.close(n, 'valid');
    await rounds.close(4, 'void');
    const claimed = await liveness.claimStale(6, 2, 100);
    // b missed 4 (void), 5, 6: two valid misses, not more than max=2.
    expect(claimed.map((c) => c.deviceId)).toEqual(['c']);
    expect(claimed[0]!.missedRounds).toBe(3);
  });

  it('nobody is claimed before max+1 valid rounds exist', async () => {
    const { keys, liveness, rounds } = fresh();
    await heardIn(liveness, keys, 0, ['x']);
    for (const n of [1, 2]) await rounds.close(n, 'valid');
    expect(await liveness.claimStale(2, 2, 100)).toEqual([]);
    await rounds.close(3, 'valid');
    expect((await liveness.claimStale(3, 2, 100)).map((c) => c.deviceId)).toEqual(['x']);
  });

  it('a claim survives a crash until released, and is not claimed twice', async () => {
    const { keys, liveness, rounds } = fresh();
    await heardIn(liveness, keys, 1, ['p', 'q']);
    for (let n = 1; n <= 5; n++) await rounds.close(n, 'valid');
    const first = await liveness.claimStale(5, 2, 100);
    expect(first).toHaveLength(2);
    const rerun = await liveness.claimStale(5, 2, 100);
    expect(rerun.map((c) => c.deviceId).sort()).toEqual(['p', 'q']);
    await liveness.releaseClaims(5, ['p', 'q']);
    expect(await liveness.claimStale(5, 2, 100)).toEqual([]);
  });

  it('records heartbeats: new, heard again, stale echo, unknown and revoked tokens', async () => {
    const { keys, liveness } = fresh();
    await liveness.cacheTokens([{ tokenHash: 'h1', deviceId: 'd1' }]);
    await redis.set(keys.round, 7);
    const none = { heard: 0, stale: 0, revoked: 0, unknown: [], fresh: [] };
    expect(await liveness.recordHeartbeats([{ tokenHash: 'h1' }])).toEqual({
      ...none,
      heard: 1,
      fresh: [{ deviceId: 'd1', round: 7 }],
    });
    expect(await liveness.recordHeartbeats([{ tokenHash: 'h1', round: 7 }])).toEqual({ ...none, heard: 1 });
    expect(await liveness.recordHeartbeats([{ tokenHash: 'h1', round: 6 }])).toEqual({ ...none, stale: 1 });
    expect(await liveness.recordHeartbeats([{ tokenHash: 'zz' }])).toEqual({ ...none, unknown: ['zz'] });
    await liveness.forgetToken('h1');
    expect(await liveness.recordHeartbeats([{ tokenHash: 'h1' }])).toEqual({ ...none, revoked: 1 });
    // the heard round never goes backwards
    await redis.set(keys.round, 3);
    await liveness.cacheTokens([{ tokenHash: 'h2', deviceId: 'd1' }]);
    await liveness.recordHeartbeats([{ tokenHash: 'h2' }]);
    expect((await liveness.indexedMany(['d1'])).get('d1')).toBe(7);
  });

  it('answers a large mixed batch: each kind counted, unknown tokens in order, one "fresh" per device', async () => {
    const { keys, liveness } = fresh();
    const devices = Array.from({ length: 1500 }, (_, i) => `d${i}`);
    await liveness.cacheTokens(devices.map((d) => ({ tokenHash: `h-${d}`, deviceId: d })));
    await liveness.seed(devices.slice(0, 700), 3);
    await liveness.forgetToken('h-d1499');
    await redis.set(keys.round, 4);
    // 2503 heartbeats: more than one script call takes; echoes in some chunks and not in others
    const batch = [
      ...devices.map((d) => ({ tokenHash: `h-${d}` })),
      { tokenHash: 'h-d800', round: 3 },
      { tokenHash: 'nobody' },
      ...devices.slice(0, 998).map((d) => ({ tokenHash: `h-${d}`, round: 4 })),
      { tokenHash: 'nobody-else' },
      { tokenHash: 'h-d5', round: 2 },
      { tokenHash: 'nobody', round: 4 },
    ];
    const result = await liveness.recordHeartbeats(batch, 1234);
    // 1499 live tokens once, then 998 with the current round: all count; one revoked; two stale
    expect(result.heard).toBe(1499 + 998);
    expect(result.revoked).toBe(1);
    expect(result.stale).toBe(2);
    expect(result.unknown).toEqual(['nobody', 'nobody-else', 'nobody']);
    expect(result.fresh).toEqual(devices.slice(700, 1499).map((deviceId) => ({ deviceId, round: 4 })));
    expect(await redis.zcount(keys.heard, 4, 4)).toBe(1499);
    expect(await liveness.lastHeardMany(['d0', 'd1498', 'd1499'])).toEqual(
      new Map([
        ['d0', 1234],
        ['d1498', 1234],
      ]),
    );
  });

  it('issues each round number once per scheduler job, and never two rounds too close together', async () => {
    const { rounds } = fresh();
    const t = 1_000_000;
    expect(await rounds.advance('job-a', t, t + 5, 800, 1)).toEqual({ round: 1, fresh: true });
    expect(await rounds.advance('job-a', t, t + 50, 800, 1)).toEqual({ round: 1, fresh: false });
    expect(await rounds.advance('job-b', t + 500, t + 500, 800, 1)).toEqual({ round: 0, fresh: false });
    // The previous tick ran 300 ms late: the next one, on time, is still issued.
    expect(await rounds.advance('job-c', t + 1000, t + 1001, 800, 1)).toEqual({ round: 2, fresh: true });
    expect((await rounds.meta(2))!.issuedAt).toBe(t + 1001);
  });
});
