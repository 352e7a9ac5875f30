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
}

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
}

/**
 * Whether the server could have heard every device of a shard throughout a round: the gateway that
 * opened it there (within half an interval of its issue) still holds the shard, and has held every
 * session of it since before it opened the round. Otherwise the round is void for that shard: a miss
 * for nobody (a handover, a gateway killed, a Moth session lost).
 */
function heardThroughout(shard: number, c: RoundClose): boolean {
  const o = c.opened.get(shard);
  const h = c.holds.get(shard);
  if (!o || !h || h.owner !== o.gateway || h.expires < c.now || h.since === null) return false;
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
