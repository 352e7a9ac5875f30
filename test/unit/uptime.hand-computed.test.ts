import { describe, expect, it } from 'vitest';
import { combine, uptime, uptimeBuckets, type SessionSpan } from '../../src/domain/uptime';

// Every expected figure below is worked out by hand, in minutes.
const m = 60_000;
const session = (start: number, end: number | null, reason: string | null = null): SessionSpan => ({
  startedAt: start * m,
  endedAt: end === null ? null : end * m,
  endReason: end === null ? null : reason,
});
const range = (from: number, to: number, now: number, createdAt = 0, deletedAt: number | null = null) => ({
  from: from * m,
  to: to * m,
  now: now * m,
  createdAt: createdAt * m,
  deletedAt: deletedAt === null ? null : deletedAt * m,
});

describe('uptime from the session history', () => {
  it('sessions and outages that cross the range edges count only inside it', () => {
    // Range 60-180. Connected 30-90 (missed heartbeats), 100-150 (planned), 200-.
    const sessions = [session(100, 150, 'PLANNED'), session(30, 90, 'MISSED_HEARTBEATS'), session(200, null)];
    expect(uptime(sessions, range(60, 180, 300))).toEqual({
      observedSeconds: 120 * 60,
      connectedSeconds: (30 + 50) * 60, // 60-90 and 100-150
      connectedPercent: 66.67,
      outages: {
        MISSED_HEARTBEATS: { count: 1, seconds: 10 * 60 }, // 90-100
        PLANNED: { count: 1, seconds: 30 * 60 }, // 150-200, cut at 180
      },
      mtbfSeconds: 80 * 60, // 80 minutes connected, one failure
    });
  });

  it('an outage over the whole range, and a session over the whole range', () => {
    const down = uptime([session(0, 10, 'MISSED_HEARTBEATS'), session(500, null)], range(60, 180, 600));
    expect(down).toMatchObject({
      connectedSeconds: 0,
      connectedPercent: 0,
      outages: { MISSED_HEARTBEATS: { count: 1, seconds: 120 * 60 } },
      mtbfSeconds: 0,
    });
    const up = uptime([session(0, null)], range(60, 180, 300));
    expect(up).toMatchObject({ connectedPercent: 100, outages: {}, mtbfSeconds: null });
  });

  it('counts only while the device exists: registered late, deleted, or up to now', () => {
    // Registered at 120, connected from 130: 50 of the 60 minutes it existed; before its first
    // session it had no outage.
    expect(uptime([session(130, null)], range(60, 180, 300, 120))).toMatchObject({
      observedSeconds: 60 * 60,
      connectedSeconds: 50 * 60,
      connectedPercent: 83.33,
      outages: {},
    });
    // Deleted at 100: its last session's end is no outage.
    expect(uptime([session(0, 100, 'DELETED')], range(60, 180, 300, 0, 100))).toMatchObject({
      observedSeconds: 40 * 60,
      connectedPercent: 100,
      outages: {},
    });
    // Now is 120: the future is not observed.
    expect(uptime([session(0, null)], range(60, 180, 120))).toMatchObject({
      observedSeconds: 60 * 60,
      connectedPercent: 100,
    });
    expect(uptime([], range(60, 180, 30))).toMatchObject({ observedSeconds: 0, connectedPercent: null });
  });

  it('cuts a range into hours, each exact', () => {
    const sessions = [session(30, 90, 'MISSED_HEARTBEATS'), session(120, null)];
    const hours = uptimeBuckets(sessions, range(0, 180, 240), 'hour');
    expect(hours.map((h) => [h.from, h.report.connectedPercent, h.report.outages])).toEqual([
      ['1970-01-01T00:00:00.000Z', 50, {}],
      ['1970-01-01T01:00:00.000Z', 50, { MISSED_HEARTBEATS: { count: 1, seconds: 30 * 60 } }],
      ['1970-01-01T02:00:00.000Z', 100, {}],
    ]);
  });

  it('sums devices into the fleet figure', () => {
    const a = uptime([session(0, 30, 'MISSED_HEARTBEATS'), session(40, null)], range(0, 60, 60));
    const b = uptime([session(0, null)], range(0, 60, 60));
    expect(combine([a, b])).toEqual({
      observedSeconds: 120 * 60,
      connectedSeconds: 110 * 60,
      connectedPercent: 91.67,
      outages: { MISSED_HEARTBEATS: { count: 1, seconds: 10 * 60 } },
      mtbfSeconds: 110 * 60,
    });
  });
});
