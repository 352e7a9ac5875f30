import { describe, expect, it } from 'vitest';
import { fullPolicy, isDue, resolvePolicy, roundsAllowed, staleAmong } from '../../src/domain/policy';
import { missedValidRounds } from '../../src/domain/rounds';

const none = fullPolicy({});
const server = { maxConsecutiveMisses: 3, intervalMultiple: 1, linkMaxP95Ms: 500, linkMaxMissShare: 0.2 };

describe('health-check policy', () => {
  it("takes each value from the device, else its group, else the server's", () => {
    expect(resolvePolicy(none, null, server)).toEqual({
      maxConsecutiveMisses: { value: 3, source: 'server' },
      intervalMultiple: { value: 1, source: 'server' },
      linkMaxP95Ms: { value: 500, source: 'server' },
      linkMaxMissShare: { value: 0.2, source: 'server' },
    });
    const group = fullPolicy({ maxConsecutiveMisses: 6, intervalMultiple: 2, linkMaxP95Ms: 300 });
    const own = fullPolicy({ maxConsecutiveMisses: 1, linkMaxMissShare: 0.5 });
    expect(resolvePolicy(own, group, server)).toEqual({
      maxConsecutiveMisses: { value: 1, source: 'device' },
      intervalMultiple: { value: 2, source: 'group' },
      linkMaxP95Ms: { value: 300, source: 'group' },
      linkMaxMissShare: { value: 0.5, source: 'device' },
    });
    expect(resolvePolicy(none, fullPolicy({ intervalMultiple: 4 }), server)).toMatchObject({
      maxConsecutiveMisses: { value: 3, source: 'server' },
      intervalMultiple: { value: 4, source: 'group' },
    });
  });

  it('gives a device checked every k-th round k rounds per allowed miss', () => {
    expect(roundsAllowed(3, 1)).toBe(3);
    // Asked in rounds 0, 2, 4...; heard in 4, silent after: due 6, 8, 10 missed (3 > 2) at round 10,
    // when 6 rounds (5, 6, ..., 10) have passed: more than 5.
    expect(roundsAllowed(2, 2)).toBe(5);
    expect(roundsAllowed(1, 10)).toBe(19);
    expect([0, 1, 2, 3, 4].filter((r) => isDue(r, 2))).toEqual([0, 2, 4]);
    expect([5, 6, 7, 8, 9, 10].filter((r) => isDue(r, 3))).toEqual([6, 9]);
  });

  it('counts misses over valid rounds only, after the last heard, up to n', () => {
    expect(missedValidRounds(4, 10, [2, 4, 5, 7, 8, 10, 11])).toBe(4);
    expect(missedValidRounds(10, 10, [9, 10])).toBe(0);
  });

  it('picks the candidates past their own allowance, with what they missed', () => {
    const valid = [4, 5, 6, 7, 8, 9, 10];
    const candidates = [
      { deviceId: 'strict', lastRound: 6 },
      { deviceId: 'lenient', lastRound: 3 },
      { deviceId: 'slow', lastRound: 4 },
    ];
    const allowed = { strict: 3, lenient: 7, slow: 5 } as Record<string, number>;
    expect(staleAmong(10, candidates, valid, (id) => allowed[id]!)).toEqual([
      { deviceId: 'strict', lastRound: 6, missedRounds: 4 },
      { deviceId: 'slow', lastRound: 4, missedRounds: 6 },
    ]);
  });
});
