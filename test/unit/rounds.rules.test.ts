import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { detectionBound, holdsRound, isMassSilence, missedValidRounds } from '../../src/domain/rounds';

const rule = { ratio: 0.5, minDevices: 10, maxHeldRounds: 3 };

describe('round rules', () => {
  it('misses count the valid rounds after the last one heard, up to n, and nothing else', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 200 }), { maxLength: 80 }),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 0, max: 200 }),
        (valid, last, n) => {
          const ascending = [...valid].sort((a, b) => a - b);
          const naive = ascending.filter((r) => r > last && r <= n).length;
          expect(missedValidRounds(last, n, ascending)).toBe(naive);
        },
      ),
    );
  });

  it('a device allowed A misses is decided between A + 1 and A + 2 intervals after its last heartbeat', () => {
    // Interval 5 s, 3 misses allowed: heard at the end of round r, decided at the close of r + 4.
    expect(detectionBound(3, 5000)).toEqual({ minMs: 20_000, maxMs: 25_000 });
    expect(detectionBound(0, 1000)).toEqual({ minMs: 1000, maxMs: 2000 });
  });

  it('mass silence: more than the share and at least the minimum; held at most maxHeldRounds in a row', () => {
    expect(isMassSilence({ missed: 11, connected: 20 }, rule)).toBe(true);
    // Exactly half is not more than half.
    expect(isMassSilence({ missed: 10, connected: 20 }, rule)).toBe(false);
    // All of a small fleet is below the minimum.
    expect(isMassSilence({ missed: 9, connected: 9 }, rule)).toBe(false);
    expect(isMassSilence({ missed: 10, connected: 10 }, rule)).toBe(true);
    expect([0, 1, 2, 3, 4].map((held) => holdsRound(held, rule))).toEqual([true, true, true, false, false]);
    expect(holdsRound(0, { ...rule, maxHeldRounds: 0 })).toBe(false);
  });
});
