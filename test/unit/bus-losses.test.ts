import { describe, expect, it } from 'vitest';
import {
  BUS_LOSSES_KEPT,
  EXCUSED_ROUNDS_MAX,
  decodeBusLosses,
  encodeBusLosses,
  isUnstable,
  missedExcusing,
  UNSTABLE_WINDOW_MS,
} from '../../src/domain/bus-losses';
import { missedValidRounds } from '../../src/domain/rounds';
import { createBusLossLog } from '../../src/gateway/bus-loss-log';

const rounds = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('rounds a lost bus excuses', () => {
  it('without a loss, the misses are the valid rounds since the last heard', () => {
    const valid = [3, 4, 6, 7, 9];
    for (const [last, n] of [
      [2, 9],
      [4, 7],
      [9, 9],
      [10, 9],
    ] as const)
      expect(missedExcusing(last, n, valid, [])).toBe(missedValidRounds(last, n, valid));
  });

  it('excuses the valid rounds in which the bus was down, its own only, at most EXCUSED_ROUNDS_MAX', () => {
    expect(EXCUSED_ROUNDS_MAX).toBe(2);
    // Heard in 10, lost in 12 (back in 12): 11, 13 missed.
    expect(missedExcusing(10, 13, rounds(1, 13), [{ from: 12, to: 12 }])).toBe(2);
    // Lost from 11 to 13: two excused, the third counts.
    expect(missedExcusing(10, 14, rounds(1, 14), [{ from: 11, to: 13 }])).toBe(2);
    // Still down (open): every round from 11 is lost, two excused.
    expect(missedExcusing(10, 20, rounds(1, 20), [{ from: 11, to: null }])).toBe(8);
    // A loss before the last heard round excuses nothing of this silence.
    expect(missedExcusing(10, 13, rounds(1, 13), [{ from: 4, to: 9 }])).toBe(3);
    // A void round is no miss anyway: it is not excused either (the allowance is not spent on it).
    expect(missedExcusing(10, 14, [11, 13, 14], [{ from: 12, to: 13 }])).toBe(2);
  });

  it('are stored as from-to, and anything else reads as no loss', () => {
    const losses = [
      { from: 5, to: 7 },
      { from: 9, to: null },
    ];
    expect(encodeBusLosses(losses)).toBe('5-7,9-');
    expect(decodeBusLosses('5-7,9-')).toEqual(losses);
    for (const bad of ['5', '5-x', '-7', '5-7,,', '5-7;9-']) expect(decodeBusLosses(bad)).toEqual([]);
    expect(decodeBusLosses(null)).toEqual([]);
  });

  it('three losses within ten minutes make a bus unstable', () => {
    const now = 1_000_000_000;
    expect(isUnstable([now - 1000, now - 500, now], now)).toBe(true);
    expect(isUnstable([now - 500, now], now)).toBe(false);
    expect(isUnstable([now - UNSTABLE_WINDOW_MS - 1, now - 500, now], now)).toBe(false);
  });
});

describe("the gateway's log of lost buses", () => {
  it('records each loss from the round open then to the round it came back in, and hands changes once', () => {
    let round = 4;
    let now = 0;
    const log = createBusLossLog({ round: () => round, now: () => now });
    log.apply('lost', ['a', 'b']);
    log.apply('lost', ['a']); // still down: the same loss
    round = 6;
    log.apply('restored', ['a']);
    expect(log.take()).toEqual(
      new Map([
        ['a', [{ from: 4, to: 6 }]],
        ['b', [{ from: 4, to: null }]],
      ]),
    );
    expect(log.take().size).toBe(0);
    log.retake(['b']);
    expect([...log.take().keys()]).toEqual(['b']);

    // A first open of a bus it never lost clears what an earlier holder left; of one it lost, nothing.
    log.apply('opened', ['c', 'a']);
    expect(log.take()).toEqual(new Map([['c', []]]));
    log.apply('closed', ['a']);
    expect(log.take().size).toBe(0);

    for (let i = 0; i < BUS_LOSSES_KEPT + 3; i++) {
      now += 1000;
      log.apply('lost', ['d']);
      log.apply('restored', ['d']);
    }
    expect(log.take().get('d')).toHaveLength(BUS_LOSSES_KEPT);
    expect(log.unstable(['b', 'd'])).toEqual(['d']);
  });
});
