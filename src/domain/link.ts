/**
 * A robot's link quality, from its health check: the latency of each answer (from the HEALTHCHECK
 * sent on its bus to its heartbeat) and the rounds it was asked in and did not answer, short of a
 * disconnect. Judged over a sliding window of the rounds it was last asked in.
 */

/** The rounds a link is judged over: the last this many its robot was asked in. */
export const LINK_WINDOW_ROUNDS = 60;
/** A link is judged only once its window holds this many rounds (a few answers say nothing). */
export const LINK_MIN_ROUNDS = 10;
/** A degraded link recovers only once both figures are this share of their limit or less. */
export const LINK_RECOVERY_RATIO = 0.8;
/** A missed round in a window of samples (every other sample is a latency in ms). */
export const MISSED = -1;

export interface LinkStats {
  /** Latency percentiles and maximum of the answered rounds, in ms (null: none answered). */
  readonly p50Ms: number | null;
  readonly p95Ms: number | null;
  readonly maxMs: number | null;
  /** Mean difference between consecutive answers' latencies, in ms (null: fewer than two). */
  readonly jitterMs: number | null;
  /** Missed rounds over asked rounds. */
  readonly missShare: number;
  readonly answered: number;
  readonly missed: number;
}

let scratch = new Float64Array(LINK_WINDOW_ROUNDS);

/** The figures of a window of samples, oldest first (a latency in ms, or MISSED). */
export function linkStats(samples: ArrayLike<number>): LinkStats {
  // A typed array sorts numerically and natively: a gateway takes 10,000 windows at once, in one
  // scratch array (grown when needed) rather than one each.
  if (scratch.length < samples.length) scratch = new Float64Array(samples.length);
  const answers = scratch;
  let answered = 0;
  let jitter = 0;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    if (s === MISSED) continue;
    if (answered > 0) jitter += Math.abs(s - answers[answered - 1]!);
    answers[answered++] = s;
  }
  const sorted = answers.subarray(0, answered).sort();
  const missed = samples.length - answered;
  return {
    p50Ms: percentile(sorted, 0.5),
    p95Ms: percentile(sorted, 0.95),
    maxMs: answered > 0 ? sorted[answered - 1]! : null,
    jitterMs: answered > 1 ? jitter / (answered - 1) : null,
    missShare: samples.length === 0 ? 0 : missed / samples.length,
    answered,
    missed,
  };
}

/** The figures of a chart bucket: its counts and slowest answer, and the window's percentiles in it. */
export function bucketStats(b: {
  answered: number;
  missed: number;
  maxMs: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
}): LinkStats {
  const asked = b.answered + b.missed;
  return {
    p50Ms: b.p50Ms,
    p95Ms: b.p95Ms,
    maxMs: b.maxMs,
    jitterMs: null,
    missShare: asked === 0 ? 0 : b.missed / asked,
    answered: b.answered,
    missed: b.missed,
  };
}

/** A figure in ms as it is shown: to a tenth. */
export const shownMs = (ms: number | null) => (ms === null ? null : Math.round(ms * 10) / 10);

/** Nearest-rank percentile of sorted values (null when there are none). */
function percentile(sorted: Float64Array, q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}

/** The thresholds a link is held to (the robot's own, its group's or the server's). */
export interface LinkLimits {
  readonly maxP95Ms: number;
  readonly maxMissShare: number;
}

export type LinkState = 'ok' | 'degraded';

/** Where a link stands: its state and since when, and since when it has been crossing back or over. */
export interface LinkMark {
  readonly state: LinkState;
  readonly stateSince: Date;
  /** Since when its figures have been past the line that would change its state (null: they are not). */
  readonly crossingSince: Date | null;
}

/**
 * The next mark of a link given its latest figures. It degrades once its p95 latency or its miss share
 * has been over its limit for `holdMs`, and recovers once both have been at LINK_RECOVERY_RATIO of
 * their limits or under for `holdMs`: a link that hovers around a limit does not flap. A window too
 * short to judge leaves the mark as it is.
 */
export function judgeLink(
  mark: LinkMark,
  stats: LinkStats,
  limits: LinkLimits,
  now: Date,
  holdMs: number,
): { mark: LinkMark; changed: boolean } {
  if (stats.answered + stats.missed < LINK_MIN_ROUNDS) return { mark, changed: false };
  const p95 = stats.p95Ms ?? Infinity;
  const crossing =
    mark.state === 'ok'
      ? p95 > limits.maxP95Ms || stats.missShare > limits.maxMissShare
      : p95 <= limits.maxP95Ms * LINK_RECOVERY_RATIO &&
        stats.missShare <= limits.maxMissShare * LINK_RECOVERY_RATIO;
  if (!crossing) return { mark: { ...mark, crossingSince: null }, changed: false };
  const since = mark.crossingSince ?? now;
  if (now.getTime() - since.getTime() < holdMs)
    return { mark: { ...mark, crossingSince: since }, changed: false };
  const state: LinkState = mark.state === 'ok' ? 'degraded' : 'ok';
  return { mark: { state, stateSince: now, crossingSince: null }, changed: true };
}
