import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { createRedis, type RedisClient } from '../../src/redis/connection';
import { redisKeys } from '../../src/redis/keys';
import { staleAmong } from '../../src/domain/policy';
import { createLiveness, type Liveness } from '../../src/redis/liveness';
import type { Judge } from '../../src/redis/liveness';
import { createRounds } from '../../src/redis/rounds';
import { shardOf } from '../../src/domain/shards';
import { uniquePrefix } from '../support/database';

/** Each device allowed `allowance(id)` valid rounds of silence in round n. */
const byAllowance =
  (n: number, allowance: (id: string) => number): Judge =>
  (pages) =>
    Promise.resolve(pages.map((p) => staleAmong(n, p.candidates, p.validRounds, allowance)));
/** Every device allowed the same `max`. */
const uniform = (n: number, max: number) => byAllowance(n, () => max);

const SHARDS = 4;
const ALL = [0, 1, 2, 3];

let redis: RedisClient;
beforeAll(() => {
  redis = createRedis(inject('redisUrl'), 'producer');
});
afterAll(() => redis.disconnect());

function fresh() {
  const keys = redisKeys(uniquePrefix());
  return { keys, liveness: createLiveness(redis, keys, SHARDS), rounds: createRounds(redis, keys, SHARDS) };
}

const hb = (d: string, heardRound: number, round?: number, tokenHash = `h-${d}`) => ({
  tokenHash,
  deviceId: d,
  heardRound,
  ...(round === undefined ? {} : { round }),
});

async function heardIn(l: Liveness, round: number, devices: string[]) {
  await l.cacheTokens(devices.map((d) => ({ tokenHash: `h-${d}`, deviceId: d })));
  await l.recordHeartbeats(devices.map((d) => hb(d, round)));
}

/** A device id in the given shard. */
function inShard(shard: number, tag: string): string {
  for (let i = 0; ; i++) if (shardOf(`${tag}${i}`, SHARDS) === shard) return `${tag}${i}`;
}

describe('miss counting in Redis', () => {
  it('claims exactly the devices past max consecutive valid misses, with their miss count', async () => {
    const { liveness, rounds } = fresh();
    await heardIn(liveness, 2, ['c']);
    await heardIn(liveness, 3, ['b']);
    await heardIn(liveness, 5, ['a']);
    for (let n = 1; n <= 6; n++) await rounds.close(n, ALL);
    const claimed = await liveness.claimStale(6, 2, 100, uniform(6, 2));
    expect(claimed.map((c) => [c.deviceId, c.lastRound, c.missedRounds]).sort()).toEqual([
      ['b', 3, 3],
      ['c', 2, 4],
    ]);
    expect((await liveness.indexedMany(['a'])).get('a')).toBe(5);
    expect((await liveness.indexedMany(['b'])).has('b')).toBe(false);
  });

  it('a void round is a miss for nobody', async () => {
    const { liveness, rounds } = fresh();
    await heardIn(liveness, 2, ['c']);
    await heardIn(liveness, 3, ['b']);
    for (const n of [1, 2, 3, 5, 6]) await rounds.close(n, ALL);
    await rounds.close(4, []);
    const claimed = await liveness.claimStale(6, 2, 100, uniform(6, 2));
    // b missed 4 (void), 5, 6: two valid misses, not more than max=2.
    expect(claimed.map((c) => c.deviceId)).toEqual(['c']);
    expect(claimed[0]!.missedRounds).toBe(3);
  });

  it('nobody is claimed before max+1 valid rounds exist', async () => {
    const { liveness, rounds } = fresh();
    await heardIn(liveness, 0, ['x']);
    for (const n of [1, 2]) await rounds.close(n, ALL);
    expect(await liveness.claimStale(2, 2, 100, uniform(2, 2))).toEqual([]);
    await rounds.close(3, ALL);
    expect((await liveness.claimStale(3, 2, 100, uniform(3, 2))).map((c) => c.deviceId)).toEqual(['x']);
  });

  it('a claim survives a crash until released, and is not claimed twice', async () => {
    const { liveness, rounds } = fresh();
    await heardIn(liveness, 1, ['p', 'q']);
    for (let n = 1; n <= 5; n++) await rounds.close(n, ALL);
    const first = await liveness.claimStale(5, 2, 100, uniform(5, 2));
    expect(first).toHaveLength(2);
    const rerun = await liveness.claimStale(5, 2, 100, uniform(5, 2));
    expect(rerun.map((c) => c.deviceId).sort()).toEqual(['p', 'q']);
    await liveness.releaseClaims(5, ['p', 'q']);
    expect(await liveness.claimStale(5, 2, 100, uniform(5, 2))).toEqual([]);
  });

  it('a round void for one shard is a miss for nobody there, and counts in the others', async () => {
    const { liveness, rounds } = fresh();
    const [a, b] = [inShard(0, 'a'), inShard(1, 'b')];
    await heardIn(liveness, 1, [a, b]);
    for (let n = 1; n <= 4; n++) await rounds.close(n, n === 3 ? [0, 2, 3] : ALL);
    // Both missed 2, 3, 4; round 3 was void for b's shard: b missed two valid rounds, a three.
    expect((await liveness.claimStale(4, 2, 100, uniform(4, 2))).map((c) => c.deviceId)).toEqual([a]);
    expect((await rounds.meta(3))?.validShards ?? []).toEqual([]);
  });

  it('judges each device silent past the strictest allowance by its own, and reads past a page of lenient ones', async () => {
    const { liveness, rounds } = fresh();
    // 1,200 lenient devices (allowed 10) heard before the strict one (allowed 2): more than a page of
    // candidates that stay, in the same shard, ahead of it in the index.
    const lenient = Array.from({ length: 1200 }, (_, i) => inShard(0, `len${i}-`));
    const strict = inShard(0, 'strict');
    await heardIn(liveness, 1, lenient);
    await heardIn(liveness, 2, [strict]);
    for (let n = 1; n <= 6; n++) await rounds.close(n, ALL);
    const allowance = (id: string) => (id === strict ? 2 : 10);
    const claimed = await liveness.claimStale(6, 2, 100, byAllowance(6, allowance));
    expect(claimed.map((c) => [c.deviceId, c.missedRounds])).toEqual([[strict, 4]]);
    expect((await liveness.indexedMany(lenient)).size).toBe(1200);
  });

  it('a device allowed more than a thousand rounds is still seen to miss them', async () => {
    const { liveness, rounds } = fresh();
    // Every 12th round, 100 misses allowed: (100 + 1) * 12 - 1 = 1211 rounds.
    await heardIn(liveness, 1, ['patient']);
    for (let n = 1; n <= 1213; n++) await rounds.close(n, ALL);
    expect(await liveness.claimStale(1212, 2, 100, uniform(1212, 1211))).toEqual([]);
    const claimed = await liveness.claimStale(1213, 2, 100, uniform(1213, 1211));
    expect(claimed.map((c) => [c.deviceId, c.missedRounds])).toEqual([['patient', 1212]]);
  });

  it('a device heard after it was judged is not claimed', async () => {
    const { liveness, rounds } = fresh();
    await heardIn(liveness, 1, ['late']);
    for (let n = 1; n <= 5; n++) await rounds.close(n, ALL);
    // Its heartbeat lands between the judgement and the claim.
    const judge: Judge = async (pages) => {
      await heardIn(liveness, 6, ['late']);
      return uniform(5, 2)(pages);
    };
    expect(await liveness.claimStale(5, 2, 100, judge)).toEqual([]);
    expect((await liveness.indexedMany(['late'])).get('late')).toBe(6);
  });

  it("keeps each shard's keys in one hash slot of their own", () => {
    const { keys } = fresh();
    const tags = ALL.map((s) => {
      const k = keys.liveness.shard(s);
      const all = [k.tokens, k.heard, k.lastSeen, k.validRounds, k.claimed(9)].map(
        (key) => /\{([^}]*)\}/.exec(key)?.[1],
      );
      return new Set(all);
    });
    expect(tags.map((t) => [...t])).toEqual(ALL.map((s) => [`s${s}`]));
    expect(redisKeys('{rollcall}').liveness.shard(3).heard).toBe('rollcall:{s3}:heard');
  });

  it('records heartbeats: new, heard again, stale echo, unknown, revoked and misplaced tokens', async () => {
    const { liveness } = fresh();
    // Two devices of one shard, so d2's token is in the cache d1's heartbeats are checked against.
    const [d1, d2] = [inShard(2, 'x'), inShard(2, 'y')];
    await liveness.cacheTokens([
      { tokenHash: 'h1', deviceId: d1 },
      { tokenHash: 'h2', deviceId: d2 },
    ]);
    const none = {
      heard: 0,
      stale: 0,
      revoked: 0,
      misplaced: 0,
      unknown: [],
      refused: [],
      downgraded: [],
      upgraded: [],
      fresh: [],
    };
    expect(await liveness.recordHeartbeats([hb(d1, 7, undefined, 'h1')])).toEqual({
      ...none,
      heard: 1,
      fresh: [{ deviceId: d1, round: 7 }],
    });
    expect(await liveness.recordHeartbeats([hb(d1, 7, 7, 'h1')])).toEqual({ ...none, heard: 1 });
    expect(await liveness.recordHeartbeats([hb(d1, 7, 6, 'h1')])).toEqual({ ...none, stale: 1 });
    const unknown = hb(d1, 7, undefined, 'zz');
    expect(await liveness.recordHeartbeats([unknown])).toEqual({ ...none, unknown: [unknown] });
    // d2's token heard on d1's bus: refused, and d2 is not marked heard.
    const foreign = hb(d1, 7, undefined, 'h2');
    expect(await liveness.recordHeartbeats([foreign])).toEqual({ ...none, misplaced: 1, refused: [foreign] });
    expect((await liveness.indexedMany([d2])).has(d2)).toBe(false);
    await liveness.forgetToken(d1, 'h1');
    const revoked = hb(d1, 7, undefined, 'h1');
    expect(await liveness.recordHeartbeats([revoked])).toEqual({ ...none, revoked: 1, refused: [revoked] });
    // the heard round never goes backwards
    await liveness.cacheTokens([{ tokenHash: 'h3', deviceId: d1 }]);
    await liveness.recordHeartbeats([hb(d1, 3, undefined, 'h3')]);
    expect((await liveness.indexedMany([d1])).get(d1)).toBe(7);
  });

  it('a device once proven takes proofs only: its plain token is refused as a downgrade, on every gateway', async () => {
    const { liveness } = fresh();
    const [d1, d2] = [inShard(1, 'p'), inShard(1, 'q')];
    await liveness.cacheTokens([
      { tokenHash: 'h1', deviceId: d1 },
      // Postgres already knows d2 answered with a proof: the cache says so from the start.
      { tokenHash: 'h2', deviceId: d2, proofsOnly: true },
    ]);
    const proven = (id: string, hash: string) => ({ ...hb(id, 5, undefined, hash), proven: true });
    const first = proven(d1, 'h1');
    const once = await liveness.recordHeartbeats([first]);
    expect(once).toMatchObject({ heard: 1, upgraded: [first], downgraded: [] });
    // Until it is marked, a plain one still counts (the caller marks it at once).
    expect(await liveness.recordHeartbeats([hb(d1, 5, undefined, 'h1')])).toMatchObject({ heard: 1 });
    await liveness.requireProofs([{ tokenHash: 'h1', deviceId: d1 }]);
    const plain = hb(d1, 6, undefined, 'h1');
    expect(await liveness.recordHeartbeats([plain])).toMatchObject({ heard: 0, downgraded: [plain] });
    expect(await liveness.recordHeartbeats([proven(d1, 'h1')])).toMatchObject({ heard: 1, upgraded: [] });
    const plain2 = hb(d2, 6, undefined, 'h2');
    expect(await liveness.recordHeartbeats([plain2])).toMatchObject({ heard: 0, downgraded: [plain2] });
    // Still the device's own: a proof under d2's key on d1's bus is misplaced.
    expect(await liveness.recordHeartbeats([proven(d1, 'h2')])).toMatchObject({ misplaced: 1 });
    // Marking never brings a revoked token back.
    await liveness.forgetToken(d2, 'h2');
    await liveness.requireProofs([{ tokenHash: 'h2', deviceId: d2 }]);
    expect(await liveness.recordHeartbeats([proven(d2, 'h2')])).toMatchObject({ heard: 0, revoked: 1 });
  });

  it('answers a large mixed batch: each kind counted, unknown tokens in order, one "fresh" per device', async () => {
    const { keys, liveness } = fresh();
    const devices = Array.from({ length: 1500 }, (_, i) => `d${i}`);
    await liveness.cacheTokens(devices.map((d) => ({ tokenHash: `h-${d}`, deviceId: d })));
    await liveness.seed(devices.slice(0, 700), 3);
    await liveness.forgetToken('d1499', 'h-d1499');
    // 2503 heartbeats over 4 shards: more than one script call per shard; echoes in some and not others
    const batch = [
      ...devices.map((d) => hb(d, 4)),
      hb('d800', 4, 3),
      hb('d1', 4, undefined, 'nobody'),
      ...devices.slice(0, 998).map((d) => hb(d, 4, 4)),
      hb('d2', 4, undefined, 'nobody-else'),
      hb('d5', 4, 2),
      hb('d1', 4, 4, 'nobody'),
    ];
    const result = await liveness.recordHeartbeats(batch, 1234);
    // 1499 live tokens once, then 998 with the current round: all count; one revoked; two stale
    expect(result.heard).toBe(1499 + 998);
    expect(result.revoked).toBe(1);
    expect(result.stale).toBe(2);
    expect(result.unknown.map((u) => u.tokenHash).sort()).toEqual(['nobody', 'nobody', 'nobody-else']);
    expect(result.fresh.map((f) => f.deviceId).sort()).toEqual(devices.slice(700, 1499).sort());
    const heardIn4 = await Promise.all(ALL.map((s) => redis.zcount(keys.liveness.shard(s).heard, 4, 4)));
    expect(heardIn4.reduce((a, b) => a + b, 0)).toBe(1499);
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
