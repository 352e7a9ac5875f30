import { missedValidRounds } from './rounds';

// ---- A device's bus the gateway lost ---------------------------------------------------------------
// When the gateway's session on one robot's bus drops (a network blip, a member's hostile frames, Moth
// dropping it), the gateway could not have heard that robot while it was down: those rounds are void
// for that robot alone, never for its shard or the fleet. A bus that keeps dropping cannot hide a
// silent robot: at most EXCUSED_ROUNDS_MAX rounds of one silence are excused, the rest count.

/** Rounds from `from` to `to` (inclusive) in which the gateway lost a device's bus; `to` null while down. */
export interface BusLoss {
  readonly from: number;
  readonly to: number | null;
}

/** Rounds of one silence a lost bus may excuse; past them the silence counts as the robot's own. */
export const EXCUSED_ROUNDS_MAX = 2;

/** Losses kept per device (the oldest go first): more than one silence ever needs. */
export const BUS_LOSSES_KEPT = 8;

/** A bus lost this many times within UNSTABLE_WINDOW_MS is unstable: an alarm, with an event. */
export const UNSTABLE_LOSSES = 3;
export const UNSTABLE_WINDOW_MS = 10 * 60_000;

/**
 * Valid rounds after `lastRound` up to n that the device missed, a round in which its bus was lost
 * excused (at most EXCUSED_ROUNDS_MAX of them). `validRounds` ascending.
 */
export function missedExcusing(
  lastRound: number,
  n: number,
  validRounds: readonly number[],
  losses: readonly BusLoss[],
): number {
  if (losses.length === 0) return missedValidRounds(lastRound, n, validRounds);
  let missed = 0;
  let excused = 0;
  for (const r of validRounds) {
    if (r <= lastRound || r > n) continue;
    const lost = losses.some((l) => l.from <= r && (l.to === null || r <= l.to));
    if (lost && excused < EXCUSED_ROUNDS_MAX) excused++;
    else missed++;
  }
  return missed;
}

/** As stored: `from-to` per loss (`to` empty while down), comma-separated. */
export function encodeBusLosses(losses: readonly BusLoss[]): string {
  return losses.map((l) => `${l.from}-${l.to ?? ''}`).join(',');
}

/** Reads what encodeBusLosses wrote; anything else reads as no loss. */
export function decodeBusLosses(stored: string | null | undefined): BusLoss[] {
  if (!stored) return [];
  const out: BusLoss[] = [];
  for (const part of stored.split(',')) {
    const m = /^(\d+)-(\d*)$/.exec(part);
    if (!m) return [];
    out.push({ from: Number(m[1]), to: m[2] === '' ? null : Number(m[2]) });
  }
  return out;
}

/** Whether losses at these times (epoch ms) make a bus unstable at `now`. */
export function isUnstable(lostAt: readonly number[], now: number): boolean {
  return lostAt.filter((t) => t > now - UNSTABLE_WINDOW_MS).length >= UNSTABLE_LOSSES;
}
