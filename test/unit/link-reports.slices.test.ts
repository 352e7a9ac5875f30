// A gateway writes its robots' link figures a slice at a time: 10,000 in one transaction took its
// event loop ~0.6 s in a storm and held the robots' key share for the transaction's ~1 s. A slice
// that fails is taken again with the next report; the others are written.
import { describe, expect, it } from 'vitest';
import type { LinkReport } from '../../src/gateway/link-meter';
import { createLinkReports } from '../../src/gateway/link-reports';
import { createLogger } from '../../src/logger';

const robot = (i: number) => ({ deviceId: `robot-${i}` }) as LinkReport;

describe('link reports', () => {
  it('records 2,500 robots in slices of 1,000, one after the other, a failed slice taken again', async () => {
    const reports = Array.from({ length: 2500 }, (_, i) => robot(i));
    const recorded: number[] = [];
    const written: string[][] = [];
    const retaken: string[][] = [];
    let inFlight = 0;
    let most = 0;
    const report = createLinkReports({
      meter: {
        take: () => reports,
        written: (r) => void written.push(r.map((x) => x.deviceId)),
        retake: (r) => void retaken.push(r.map((x) => x.deviceId)),
      },
      record: async (slice) => {
        most = Math.max(most, ++inFlight);
        await new Promise((resolve) => setTimeout(resolve, 5));
        inFlight--;
        recorded.push(slice.length);
        if (recorded.length === 2) throw new Error('connection lost');
        return { degraded: 0, recovered: 0 };
      },
      prune: async () => 0,
      metrics: { linkChanges: { inc: () => undefined } } as never,
      logger: createLogger('silent'),
    });
    await report();
    expect(recorded).toEqual([1000, 1000, 500]);
    expect(most).toBe(1);
    expect(written).toEqual([
      reports.slice(0, 1000).map((r) => r.deviceId),
      reports.slice(2000).map((r) => r.deviceId),
    ]);
    expect(retaken).toEqual([reports.slice(1000, 2000).map((r) => r.deviceId)]);
  });
});
