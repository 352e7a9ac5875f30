import { describe, expect, it } from 'vitest';
import { judgeLink, linkStats, MISSED, type LinkMark, type LinkStats } from '../../src/domain/link';
import { createLinkMeter, LINK_BUCKET_MS } from '../../src/gateway/link-meter';

const limits = { maxP95Ms: 200, maxMissShare: 0.2 };
const HOLD = 10_000;
const at = (s: number) => new Date(1_700_000_000_000 + s * 1000);
const stats = (p95Ms: number, missShare = 0): LinkStats => ({
  p50Ms: p95Ms / 2,
  p95Ms,
  maxMs: p95Ms,
  jitterMs: 0,
  missShare,
  answered: 20,
  missed: 0,
});

/** Judges a link through figures one second apart; answers the second each change happened at. */
function run(series: readonly LinkStats[]) {
  let mark: LinkMark = { state: 'ok', stateSince: at(0), crossingSince: null };
  const changes: { second: number; state: string }[] = [];
  series.forEach((s, second) => {
    const judged = judgeLink(mark, s, limits, at(second), HOLD);
    mark = judged.mark;
    if (judged.changed) changes.push({ second, state: mark.state });
  });
  return changes;
}

describe('link figures', () => {
  it('takes nearest-rank percentiles, the maximum, jitter and the miss share of a window', () => {
    const window = [10, 20, MISSED, 30, 40, 50, 60, 70, 80, 90, 100];
    expect(linkStats(window)).toEqual({
      p50Ms: 50,
      p95Ms: 100,
      maxMs: 100,
      jitterMs: 10,
      missShare: 1 / 11,
      answered: 10,
      missed: 1,
    });
    expect(linkStats([MISSED, MISSED])).toMatchObject({
      p50Ms: null,
      p95Ms: null,
      jitterMs: null,
      missShare: 1,
    });
  });
});

describe('degraded links', () => {
  it('degrade only after the hold, and recover only under 80 % of the limits for the hold', () => {
    const slow = Array.from({ length: 12 }, () => stats(300));
    // Over the limit from second 0: degraded at second 10, not before.
    expect(run(slow)).toEqual([{ second: 10, state: 'degraded' }]);
    // A link hovering just under the limit after degrading (190 ms: under 200, over 160) stays degraded.
    const hovering = [...slow, ...Array.from({ length: 30 }, () => stats(190))];
    expect(run(hovering)).toEqual([{ second: 10, state: 'degraded' }]);
    // Well under it for the hold: recovered once.
    const recovered = [...slow, ...Array.from({ length: 20 }, () => stats(100))];
    expect(run(recovered)).toEqual([
      { second: 10, state: 'degraded' },
      { second: 22, state: 'ok' },
    ]);
  });

  it('a crossing that ends before the hold starts the hold over', () => {
    // Over 9 s, under 1 s, over 9 s: never held for 10 s.
    const series = [
      ...Array.from({ length: 9 }, () => stats(300)),
      stats(100),
      ...Array.from({ length: 9 }, () => stats(300)),
    ];
    expect(run(series)).toEqual([]);
  });

  it('misses degrade a link as latency does; a window too short is not judged', () => {
    expect(run(Array.from({ length: 12 }, () => stats(50, 0.3)))).toEqual([
      { second: 10, state: 'degraded' },
    ]);
    const short = { ...stats(900), answered: 5 };
    expect(run(Array.from({ length: 12 }, () => short))).toEqual([]);
  });
});

describe('the link meter', () => {
  it('measures from the send on each bus, counts silence as misses unless it ended in a reconnect', () => {
    let now = 0;
    const observed: number[] = [];
    const meter = createLinkMeter({ now: () => now, observe: (s) => observed.push(s) });
    meter.asked('a', 1);
    now = 40;
    meter.asked('b', 1);
    meter.answered([{ deviceId: 'a', round: 1, at: 50 }]);
    meter.answered([{ deviceId: 'b', round: 1, at: 55 }]);
    // A second answer for the round, or one for a round it was not asked in, is no sample.
    meter.answered([{ deviceId: 'a', round: 1, at: 90 }]);
    meter.answered([{ deviceId: 'a', round: 2, at: 95 }]);
    expect(observed).toEqual([0.05, 0.015]);

    // a: silent in rounds 2 and 3, answers round 4 -> two misses. b: the same, but reconnected.
    for (const round of [2, 3, 4]) {
      meter.asked('a', round);
      meter.asked('b', round);
    }
    meter.reconnected(['b']);
    meter.answered([{ deviceId: 'a', round: 4, at: now + 20 }]);
    meter.answered([{ deviceId: 'b', round: 4, at: now + 30 }]);
    const reports = new Map(meter.take().map((r) => [r.deviceId, r]));
    expect(reports.get('a')!.window).toMatchObject({ answered: 2, missed: 2, missShare: 0.5, p95Ms: 50 });
    expect(reports.get('b')!.window).toMatchObject({ answered: 1, missed: 0, p50Ms: 30 });
    // Nothing new: nothing taken; a report not written is taken again.
    expect(meter.take()).toEqual([]);
    meter.retake([reports.get('a')!]);
    expect(meter.take().map((r) => r.deviceId)).toEqual(['a']);
  });

  it('counts answers per bucket, and keeps a closed bucket until it is written', () => {
    const meter = createLinkMeter({ now: () => 0 });
    const realNow = Date.now;
    try {
      let wall = 10 * LINK_BUCKET_MS + 1000;
      Date.now = () => wall;
      meter.asked('a', 1);
      meter.answered([{ deviceId: 'a', round: 1, at: 10 }]);
      wall += LINK_BUCKET_MS;
      meter.asked('a', 2);
      meter.answered([{ deviceId: 'a', round: 2, at: 30 }]);
      const [report] = meter.take();
      // Each bucket counts its answers and keeps its slowest; the open one takes the window's p95.
      expect(report!.buckets.map((b) => [b.startsAt.getTime(), b.stats.answered, b.stats.maxMs])).toEqual([
        [10 * LINK_BUCKET_MS, 1, 10],
        [11 * LINK_BUCKET_MS, 1, 30],
      ]);
      expect(report!.buckets[1]!.stats.p95Ms).toBe(report!.window.p95Ms);
      expect(report!.window.p95Ms).toBe(30);
      meter.retake([report!]);
      expect(meter.take()[0]!.buckets).toHaveLength(2);
      meter.written([report!]);
      meter.asked('a', 3);
      meter.answered([{ deviceId: 'a', round: 3, at: 20 }]);
      expect(meter.take()[0]!.buckets.map((b) => b.stats.answered)).toEqual([2]);
    } finally {
      Date.now = realNow;
    }
  });
});
