import { LINK_WINDOW_ROUNDS, linkStats, MISSED, type LinkStats } from '../domain/link';

/** Chart buckets: a robot's answers are summed per this span. */
export const LINK_BUCKET_MS = 5 * 60_000;

/** What the meter learnt of one robot's link since it was last taken. */
export interface LinkReport {
  readonly deviceId: string;
  /** Its sliding window. */
  readonly window: LinkStats;
  /** Its buckets touched since (a bucket's answers so far; a closed one's in full). */
  readonly buckets: readonly { readonly startsAt: Date; readonly stats: LinkStats }[];
}

interface Bucket {
  readonly startsAt: number;
  readonly samples: number[];
}

interface Memory {
  /** The last round it was asked in, and when (monotonic ms). */
  askedRound: number;
  askedAt: number;
  answeredRound: number;
  /** Rounds it was asked in and did not answer since its last answer: misses, unless it reconnects. */
  silent: number;
  /** Its last `windowRounds` samples (latency in ms, or MISSED), oldest first. */
  readonly window: number[];
  buckets: Bucket[];
  changed: boolean;
}

/**
 * Measures each robot's link on the gateway that holds its bus: a HEALTHCHECK's send time on that bus
 * (`asked`) to the answer that counted for the round (`answered`), and the rounds it was asked in
 * and left silent. Silence is counted as misses only when the robot answers again in the same
 * session: a gap that ended in a reconnect (`reconnected`) was a disconnect, not a loss. Costs two map
 * look-ups per robot and round on the heartbeat's path; the figures are computed when taken.
 */
export function createLinkMeter(deps: {
  /** Each answer's latency, in seconds (the fleet-wide histogram). */
  readonly observe?: (seconds: number) => void;
  /** The rounds a window holds (default LINK_WINDOW_ROUNDS). */
  readonly windowRounds?: number;
  readonly now?: () => number;
}) {
  const windowRounds = deps.windowRounds ?? LINK_WINDOW_ROUNDS;
  const clock = deps.now ?? (() => performance.now());
  const memories = new Map<string, Memory>();

  const push = (m: Memory, sample: number, wallMs: number) => {
    m.window.push(sample);
    if (m.window.length > windowRounds) m.window.shift();
    const startsAt = wallMs - (wallMs % LINK_BUCKET_MS);
    let bucket = m.buckets.at(-1);
    if (bucket?.startsAt !== startsAt) m.buckets.push((bucket = { startsAt, samples: [] }));
    bucket.samples.push(sample);
    m.changed = true;
  };

  return {
    /** The robot's bus was sent the HEALTHCHECK of `round` now. */
    asked(deviceId: string, round: number): void {
      let m = memories.get(deviceId);
      if (!m) {
        m = {
          askedRound: 0,
          askedAt: 0,
          answeredRound: 0,
          silent: 0,
          window: [],
          buckets: [],
          changed: false,
        };
        memories.set(deviceId, m);
      }
      if (round <= m.askedRound) return;
      if (m.askedRound > m.answeredRound) m.silent++;
      m.askedRound = round;
      m.askedAt = clock();
    },

    /** The robot's answer counted for `round`, heard at `at` (the clock `asked` reads). */
    answered(deviceId: string, round: number, at: number): void {
      const m = memories.get(deviceId);
      if (!m || m.askedRound !== round || m.answeredRound === round) return;
      const wall = Date.now();
      for (; m.silent > 0; m.silent--) push(m, MISSED, wall);
      const latencyMs = Math.max(0, at - m.askedAt);
      push(m, latencyMs, wall);
      m.answeredRound = round;
      deps.observe?.(latencyMs / 1000);
    },

    /** These robots were connected anew: their silence before was a disconnect, their window starts over. */
    reconnected(deviceIds: readonly string[]): void {
      for (const id of deviceIds) {
        const m = memories.get(id);
        if (!m) continue;
        m.silent = 0;
        m.window.length = 0;
      }
    },

    /** Forgets robots whose bus this gateway no longer holds. */
    forget(deviceIds: readonly string[]): void {
      for (const id of deviceIds) memories.delete(id);
    },

    /** The robots with new samples since the last call, with their figures. */
    take(): LinkReport[] {
      const out: LinkReport[] = [];
      for (const [deviceId, m] of memories) {
        if (!m.changed) continue;
        m.changed = false;
        out.push({
          deviceId,
          window: linkStats(m.window),
          buckets: m.buckets.map((b) => ({ startsAt: new Date(b.startsAt), stats: linkStats(b.samples) })),
        });
      }
      return out;
    },

    /** Reports written: of their buckets, only the open one is kept. */
    written(reports: readonly LinkReport[]): void {
      for (const r of reports) {
        const m = memories.get(r.deviceId);
        if (m && m.buckets.length > 1) m.buckets = m.buckets.slice(-1);
      }
    },

    /** Reports taken but not written: their figures are taken again with the next ones. */
    retake(reports: readonly LinkReport[]): void {
      for (const r of reports) {
        const m = memories.get(r.deviceId);
        if (m) m.changed = true;
      }
    },
  };
}

export type LinkMeter = ReturnType<typeof createLinkMeter>;
