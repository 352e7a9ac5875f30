/**
 * Uptime from the session history: over a range, the share of time connected, the outages (the gaps
 * between sessions) by the reason the session before them ended, and the mean time between failures.
 * Pure, and exact across sessions that cross the range's edges.
 */

export interface SessionSpan {
  readonly startedAt: number;
  /** null while the session is open. */
  readonly endedAt: number | null;
  readonly endReason: string | null;
}

export interface Observed {
  readonly from: number;
  readonly to: number;
  /** Now: an open session or outage lasts until then. */
  readonly now: number;
  /** The device exists from here (registration) until `deletedAt`, if deleted. */
  readonly createdAt: number;
  readonly deletedAt?: number | null;
}

export interface Outages {
  readonly count: number;
  readonly seconds: number;
}

export interface UptimeReport {
  /** Seconds the device existed within the range (the denominator). */
  readonly observedSeconds: number;
  readonly connectedSeconds: number;
  /** connected / observed, 0-100; null when nothing was observed. */
  readonly connectedPercent: number | null;
  /** Outages overlapping the range, clipped to it, by the end reason of the session before them. */
  readonly outages: Record<string, Outages>;
  /** Connected time per failure (outage after missed heartbeats); null without failures. */
  readonly mtbfSeconds: number | null;
}

export const FAILURE = 'MISSED_HEARTBEATS';

const overlap = (a: number, b: number, from: number, to: number) =>
  Math.max(0, Math.min(b, to) - Math.max(a, from));

/** The report for one device; `sessions` in any order, each [startedAt, endedAt ?? now). */
export function uptime(sessions: readonly SessionSpan[], o: Observed): UptimeReport {
  const start = Math.max(o.from, o.createdAt);
  const end = Math.min(o.to, o.now, o.deletedAt ?? Infinity);
  const observed = Math.max(0, end - start);
  const ordered = [...sessions].sort((a, b) => a.startedAt - b.startedAt);
  let connected = 0;
  const outages: Record<string, { count: number; seconds: number }> = {};
  ordered.forEach((s, i) => {
    const sEnd = s.endedAt ?? o.now;
    connected += overlap(s.startedAt, sEnd, start, end);
    if (s.endedAt === null) return;
    // The outage this session's end began: until the next session, or still going.
    const gapEnd = ordered[i + 1]?.startedAt ?? o.now;
    const clipped = overlap(s.endedAt, gapEnd, start, end);
    const touches = s.endedAt < end && gapEnd > start;
    if (!touches) return;
    const reason = s.endReason ?? 'UNKNOWN';
    const entry = (outages[reason] ??= { count: 0, seconds: 0 });
    entry.count++;
    entry.seconds += clipped;
  });
  const failures = outages[FAILURE]?.count ?? 0;
  return {
    observedSeconds: observed / 1000,
    connectedSeconds: connected / 1000,
    connectedPercent: observed > 0 ? Math.round((connected / observed) * 10_000) / 100 : null,
    outages: Object.fromEntries(
      Object.entries(outages).map(([r, v]) => [r, { count: v.count, seconds: v.seconds / 1000 }]),
    ),
    mtbfSeconds: failures > 0 ? connected / 1000 / failures : null,
  };
}

/** The range cut into hour or day buckets (UTC), each with its own report. */
export function uptimeBuckets(
  sessions: readonly SessionSpan[],
  o: Observed,
  bucket: 'hour' | 'day',
): { from: string; to: string; report: UptimeReport }[] {
  const size = bucket === 'hour' ? 3_600_000 : 86_400_000;
  const out: { from: string; to: string; report: UptimeReport }[] = [];
  for (let t = Math.floor(o.from / size) * size; t < o.to; t += size) {
    const from = Math.max(t, o.from);
    const to = Math.min(t + size, o.to);
    out.push({
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      report: uptime(sessions, { ...o, from, to }),
    });
  }
  return out;
}

/** Reports of many devices summed: the fleet's connected share, outages and MTBF. */
export function combine(reports: readonly UptimeReport[]): UptimeReport {
  let observed = 0;
  let connected = 0;
  const outages: Record<string, { count: number; seconds: number }> = {};
  for (const r of reports) {
    observed += r.observedSeconds;
    connected += r.connectedSeconds;
    for (const [reason, v] of Object.entries(r.outages)) {
      const entry = (outages[reason] ??= { count: 0, seconds: 0 });
      entry.count += v.count;
      entry.seconds += v.seconds;
    }
  }
  const failures = outages[FAILURE]?.count ?? 0;
  return {
    observedSeconds: observed,
    connectedSeconds: connected,
    connectedPercent: observed > 0 ? Math.round((connected / observed) * 10_000) / 100 : null,
    outages,
    mtbfSeconds: failures > 0 ? connected / failures : null,
  };
}
