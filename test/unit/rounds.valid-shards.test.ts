import { describe, expect, it } from 'vitest';
import { validShards, type Holding, type Opening } from '../../src/domain/rounds';
import { rendezvousOwner, shardOf, shardsOwnedBy } from '../../src/domain/shards';

const issuedAt = 1_000_000;
const base = {
  shards: 4,
  issuedAt,
  intervalMs: 2000,
  now: issuedAt + 2000,
  sharedBus: -1,
};
const opened = (entries: [number, Opening][]) => new Map(entries);
const holds = (entries: [number, Holding][]) => new Map(entries);
const hold = (owner: string, since: number | null, users = 0, caughtUp: number | null = null): Holding => ({
  owner,
  since,
  expires: issuedAt + 4000,
  users,
  caughtUp,
});

describe('which shards a closing round is valid for', () => {
  it('valid where the gateway that opened it still holds the shard, every session up since before', () => {
    const o = opened([0, 1, 2, 3].map((s) => [s, { gateway: 'a', at: issuedAt + 20 }]));
    const h = holds([
      [0, hold('a', issuedAt - 5000)],
      [1, hold('b', issuedAt - 5000)], // handed over since: b did not open it
      [2, hold('a', issuedAt + 500)], // a session dropped and came back during the round
      [3, hold('a', null)], // a session is down now
    ]);
    expect(validShards({ ...base, opened: o, holds: h })).toEqual([0]);
  });

  it('once closed, valid only where the owner vouched it had read its buses past the close', () => {
    const closedAt = issuedAt + 2000;
    const o = opened([0, 1, 2, 3].map((s) => [s, { gateway: 'a', at: issuedAt + 20 }]));
    const h = holds([
      [0, hold('a', issuedAt - 5000, 0, closedAt + 10)],
      [1, hold('a', issuedAt - 5000, 0, closedAt - 10)], // caught up only to before the close
      [2, hold('a', issuedAt - 5000, 0, null)], // could not vouch (behind, or writes too slow)
      [3, hold('a', closedAt - 100, 0, closedAt + 10)], // fell behind during the round
    ]);
    expect(validShards({ ...base, opened: o, holds: h, closedAt })).toEqual([0]);
    // At the close itself (no closedAt yet) the vouching is not asked for.
    expect(validShards({ ...base, opened: o, holds: h })).toEqual([0, 1, 2]);
  });

  it('void where nobody opened it, where it opened late, or where the lease expired', () => {
    const h = holds([0, 1, 2].map((s) => [s, hold('a', issuedAt - 5000)]));
    const o = opened([
      [1, { gateway: 'a', at: issuedAt + 1500 }], // more than half an interval late
      [2, { gateway: 'a', at: issuedAt + 10 }],
    ]);
    expect(validShards({ ...base, opened: o, holds: h })).toEqual([2]);
    expect(validShards({ ...base, opened: o, holds: h, now: issuedAt + 5000 })).toEqual([]);
  });

  it('while devices are still heard on the shared bus, it too must have been heard throughout', () => {
    const o = opened([-1, 0, 1].map((s) => [s, { gateway: 'a', at: issuedAt + 10 }]));
    const held = (sharedSince: number | null, users: number) =>
      holds([
        [-1, hold('a', sharedSince, users)],
        [0, hold('a', issuedAt - 5000)],
        [1, hold('a', issuedAt - 5000)],
      ]);
    const all = { ...base, shards: 2, opened: o };
    expect(validShards({ ...all, holds: held(issuedAt - 5000, 3) })).toEqual([0, 1]);
    expect(validShards({ ...all, holds: held(null, 3) })).toEqual([]);
    // Nobody left on it: its state does not matter.
    expect(validShards({ ...all, holds: held(null, 0) })).toEqual([0, 1]);
  });
});

describe('shards and their owners', () => {
  it('a device always falls in the same shard, and devices spread over all of them', () => {
    const ids = Array.from({ length: 2000 }, (_, i) => `device-${i}`);
    const counts = new Array<number>(64).fill(0);
    for (const id of ids) counts[shardOf(id, 64)]!++;
    expect(shardOf('device-7', 64)).toBe(shardOf('device-7', 64));
    expect(Math.min(...counts)).toBeGreaterThan(10);
  });

  it('rendezvous: every shard has one owner; a gateway joining moves only the shards it wins', () => {
    const two = ['g1', 'g2'];
    const three = ['g1', 'g2', 'g3'];
    const before = Array.from({ length: 64 }, (_, s) => rendezvousOwner(s, two));
    const after = Array.from({ length: 64 }, (_, s) => rendezvousOwner(s, three));
    for (let s = 0; s < 64; s++) if (after[s] !== before[s]) expect(after[s]).toBe('g3');
    const won = shardsOwnedBy('g3', three, 64).length;
    expect(won).toBeGreaterThan(10);
    expect(won).toBeLessThan(35);
    expect(shardsOwnedBy('g1', three, 64).length + shardsOwnedBy('g2', three, 64).length + won).toBe(64);
  });
});
