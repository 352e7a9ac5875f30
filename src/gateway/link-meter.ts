import { bucketStats, LINK_WINDOW_ROUNDS, linkStats, MISSED, type LinkStats } from '../domain/link';

/** Chart buckets: a robot's answers are counted per this span. */
export const LINK_BUCKET_MS = 5 * 60_000;

/**
 * A chart bucket of one robot: its answers and misses in the span, the slowest answer, and its
 * window's p50 and p95 as last taken in the span (a window of 60 rounds is about a bucket's span).
 */
export interface BucketFigures {
  readonly startsAt: Date;
  readonly stats: LinkStats;
}

/** What the meter learnt of one robot's link since it was last taken. */
export interface LinkReport {
  readonly deviceId: string;
  /** Its sliding window. */
  readonly window: LinkStats;
  /** Its buckets touched since (a closed one's figures in full, the open one's so far). */
  readonly buckets: readonly BucketFigures[];
}

interface Bucket {
  readonly startsAt: number;
  answered: number;
  missed: number;
  maxMs: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
}

interface Memory {
  /** The last round it was asked in, and when (monotonic ms). */
  askedRound: number;
  askedAt: number;
  answeredRound: number;
  /** Rounds it was asked in and did not answer since its last answer: misses, unless it reconnects. */
  silent: number;
  /** Its last samples (latency in ms, or MISSED): a ring, `filled` of them, the next at `head`. */
  readonly window: Float32Array;
  head: number;
  filled: number;
  buckets: Bucket[];
  changed: boolean;
}

const newMemory = (windowRounds: number): Memory => ({
  askedRound: 0,
  askedAt: 0,
  answeredRound: 0,
  silent: 0,
  window: new Float32Array(windowRounds),
  head: 0,
  filled: 0,
  buckets: [],
  changed: false,
});

/** Adds a sample (latency in ms, or MISSED) to the window and to the bucket of `wallMs`. */
function push(m: Memory, sample: number, wallMs: number, windowRounds: number): void {
  m.window[m.head] = sample;
  m.head = (m.head + 1) % windowRounds;
  if (m.filled < windowRounds) m.filled++;
  const startsAt = wallMs - (wallMs % LINK_BUCKET_MS);
  let bucket = m.buckets.at(-1);
  if (bucket?.startsAt !== startsAt) {
    bucket = { startsAt, answered: 0, missed: 0, maxMs: null, p50Ms: null, p95Ms: null };
    m.buckets.push(bucket);
  }
  if (sample === MISSED) bucket.missed++;
  else {
    bucket.answered++;
    bucket.maxMs = Math.max(bucket.maxMs ?? 0, sample);
  }
  m.changed = true;
}

/** Asked in `round` at `at` (unless asked in it already); a round before left unanswered was silent. */
function ask(m: Memory, round: number, at: number): void {
  if (round <= m.askedRound) return;
  if (m.askedRound > m.answeredRound) m.silent++;
  m.askedRound = round;
  m.askedAt = at;
}

/** The answer to the round it was asked in, heard at `at`: its silences before, then its latency (ms). */
function answer(m: Memory, round: number, at: number, wallMs: number, windowRounds: number): number {
  for (; m.silent > 0; m.silent--) push(m, MISSED, wallMs, windowRounds);
  const latencyMs = Math.max(0, at - m.askedAt);
  push(m, latencyMs, wallMs, windowRounds);
  m.answeredRound = round;
  return latencyMs;
}

/** Whether a robot answered the last round it was asked in. */
const answeredLastRound = (m: Memory | undefined) =>
  m !== undefined && m.answeredRound > 0 && m.answeredRound === m.askedRound;

/**
 * Measures each robot's link on the gateway that holds its bus: a HEALTHCHECK's send time on that bus
 * (`asked`) to the answer that counted for the round (`answered`), and the rounds it was asked in
 * and left silent. Silence is counted as misses only when the robot answers again in the same
 * session: a gap that ended in a reconnect (`reconnected`) was a disconnect, not a loss. Costs a map
 * look-up and a few stores per robot and round on the heartbeat's path; the figures are computed
 * when taken (`npm run bench` measures both).
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

  /** Where a full window's samples are put in order (read before the next report). */
  const scratch = new Float32Array(windowRounds);

  return {
    /** The robot's bus was handed the HEALTHCHECK of `round` at `at` (default now). */
    asked(deviceId: string, round: number, at = clock()): void {
      let m = memories.get(deviceId);
      if (!m) memories.set(deviceId, (m = newMemory(windowRounds)));
      ask(m, round, at);
    },

    /** Answers that counted for their round, each heard at `at` (the clock `asked` reads). */
    answered(answers: readonly { deviceId: string; round: number; at: number }[]): void {
      const wall = Date.now();
      for (const { deviceId, round, at } of answers) {
        const m = memories.get(deviceId);
        if (!m || m.askedRound !== round || m.answeredRound === round) continue;
        const latencyMs = answer(m, round, at, wall, windowRounds);
        deps.observe?.(latencyMs / 1000);
      }
    },

    /** These robots were connected anew: their silence before was a disconnect, their window starts over. */
    reconnected(deviceIds: readonly string[]): void {
      for (const id of deviceIds) {
        const m = memories.get(id);
        if (!m) continue;
        m.silent = 0;
        m.head = m.filled = 0;
      }
    },

    /** Whether the robot answered the last round it was asked in (false for one never asked here). */
    answeredLast: (deviceId: string): boolean => answeredLastRound(memories.get(deviceId)),

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
        out.push(report(deviceId, m, scratch));
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

/** The window's samples, oldest first (a full window is put in order in `scratch`). */
function samples(m: Memory, scratch: Float32Array): Float32Array {
  const size = scratch.length;
  if (m.filled < size) return m.window.subarray(0, m.filled);
  scratch.set(m.window.subarray(m.head), 0);
  scratch.set(m.window.subarray(0, m.head), size - m.head);
  return scratch;
}

/** The robot's figures: its window's, which its open bucket takes too, and its buckets'. */
function report(deviceId: string, m: Memory, scratch: Float32Array): LinkReport {
  const window = linkStats(samples(m, scratch));
  const open = m.buckets.at(-1)!;
  open.p50Ms = window.p50Ms;
  open.p95Ms = window.p95Ms;
  return { deviceId, window, buckets: m.buckets.map(figures) };
}

const figures = (b: Bucket): BucketFigures => ({ startsAt: new Date(b.startsAt), stats: bucketStats(b) });

export type LinkMeter = ReturnType<typeof createLinkMeter>;
