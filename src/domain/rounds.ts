/** Who opened a round on a shard (sent its HEALTHCHECKs), and when. */
export interface Opening {
  readonly gateway: string;
  readonly at: number;
}

/** A shard's lease as the round's close sees it. */
export interface Holding {
  readonly owner: string;
  /** Since when the owner has held every session of the shard without a break (null: it does not). */
  readonly since: number | null;
  readonly expires: number;
  /** For the shared bus: how many devices are still heard on it. */
  readonly users: number;
  /**
   * Up to when the owner vouches it has read its buses and written what they carried (its event loop
   * on time, reading not paused, writes done): null when it could not at its last renewal.
   */
  readonly caughtUp: number | null;
}

/**
 * How far behind its clock a gateway may read its buses before it stops vouching for them: a frame
 * in a socket is read within this margin (a later one flags the gateway, whose rounds are then void).
 */
export const CAUGHT_UP_MARGIN_MS = 250;

export interface RoundClose {
  readonly shards: number;
  readonly issuedAt: number;
  readonly intervalMs: number;
  /** Per shard (and `sharedBus` for the shared bus): who opened the round. */
  readonly opened: ReadonlyMap<number, Opening>;
  /** Per shard (and `sharedBus`): who holds it now. */
  readonly holds: ReadonlyMap<number, Holding>;
  readonly now: number;
  /** The id under which the shared bus of earlier versions is held, when it is in use. */
  readonly sharedBus?: number;
  /**
   * When the round closed, once the owners have had time to vouch for it: each must then have caught
   * up to it (a gateway that fell behind blames itself, not its robots).
   */
  readonly closedAt?: number;
}

/**
 * Whether the server could have heard every device of a shard throughout a round: the gateway that
 * opened it there (within half an interval of its issue) still holds the shard, and has held every
 * session of it since before it opened the round (without falling behind its buses since), and, once
 * the round is closed, has caught up with them past its close. Otherwise the round is void for that
 * shard: a miss for nobody (a handover, a gateway killed, a Moth session lost, a starved gateway).
 */
function heardThroughout(shard: number, c: RoundClose): boolean {
  const o = c.opened.get(shard);
  const h = c.holds.get(shard);
  if (!o || !h || h.owner !== o.gateway || h.expires < c.now || h.since === null) return false;
  if (c.closedAt !== undefined && (h.caughtUp === null || h.caughtUp < c.closedAt)) return false;
  return h.since <= o.at && o.at - c.issuedAt <= c.intervalMs / 2;
}

/**
 * The shards a closing round is valid for. While devices are still heard on the shared bus, a shard
 * is valid only if that bus was heard throughout too (any of its devices may be answering there).
 */
export function validShards(c: RoundClose): number[] {
  const shared = c.sharedBus === undefined ? undefined : c.holds.get(c.sharedBus);
  if (shared && shared.users > 0 && !heardThroughout(c.sharedBus!, c)) return [];
  const out: number[] = [];
  for (let s = 0; s < c.shards; s++) if (heardThroughout(s, c)) out.push(s);
  return out;
}

// ---- Misses, the detection bound and the mass-silence brake -----------------------------------------
// A device is heard in a round when a heartbeat of it arrives while that round is open on its shard.
// It misses a round that was valid for its shard and in which it was not heard; a void or held round
// is a miss for nobody. The Lua scripts of src/redis/liveness.ts implement this (a test checks them
// against these functions on random cases).

/** Valid rounds after `lastRound` up to and including n (`validRounds` ascending). */
export function missedValidRounds(lastRound: number, n: number, validRounds: readonly number[]): number {
  // Heard after n (a heartbeat of a later round): none missed by n.
  return Math.max(0, countUpTo(validRounds, n) - countUpTo(validRounds, lastRound));
}

/** How many of the ascending values are <= x (a binary search). */
function countUpTo(ascending: readonly number[], x: number): number {
  let lo = 0;
  let hi = ascending.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ascending[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * When a device allowed `allowed` consecutive misses (roundsAllowed) is disconnected, every round of
 * the way valid: at the close of round r + allowed + 1 for a device last heard in round r, that is
 * between (allowed + 1) and (allowed + 2) intervals after its last heartbeat (it may have come at the
 * start or the end of round r), plus the evaluation's latency.
 */
export function detectionBound(allowed: number, intervalMs: number): { minMs: number; maxMs: number } {
  return { minMs: (allowed + 1) * intervalMs, maxMs: (allowed + 2) * intervalMs };
}

export interface SilenceRule {
  /** More than this share of the connected devices... */
  readonly ratio: number;
  /** ...and at least this many, missing one round, is mass silence... */
  readonly minDevices: number;
  /** ...which holds at most this many rounds in a row. */
  readonly maxHeldRounds: number;
}

/**
 * The mass-silence brake: when more than `ratio` of the connected devices (and at least `minDevices`)
 * missed a valid round, the fault is more likely ours or the site's network than theirs...
 */
export function isMassSilence(round: { missed: number; connected: number }, rule: SilenceRule): boolean {
  return round.missed > rule.ratio * round.connected && round.missed >= rule.minDevices;
}

/**
 * ...and the round is held (a miss for nobody), at most `maxHeldRounds` in a row, so a real site-wide
 * outage is still detected, late by a bounded number of rounds. `heldInARow`: held just before it.
 */
export function holdsRound(heldInARow: number, rule: SilenceRule): boolean {
  return heldInARow < rule.maxHeldRounds;
}
