import type { Result } from 'ioredis';
import type { RedisClient } from './connection';
import type { KeySpace } from './key-space';
import { defineScripts } from './scripts';

/** Who holds a shard: the gateway, since when it has held every session of it (null: not yet), until when. */
export interface ShardHold {
  readonly owner: string;
  readonly since: number | null;
  readonly expires: number;
  /** For the shared bus: how many devices are still heard on it. */
  readonly users: number;
  /** Up to when the owner has read its buses and written what they carried (null: it cannot vouch). */
  readonly caughtUp: number | null;
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    rollcallLease(leases: string, ...args: string[]): Result<string[], Context>;
  }
}

export interface LeaseWish {
  readonly shard: number;
  /** Since when this gateway has held every session of the shard, or null. */
  readonly since: number | null;
  readonly users?: number;
}

/** Which gateway holds which shard, and since when it has held every session of it. */
export const leaseKeys = (space: KeySpace) => ({ holders: space.fleet('shard-leases') });
export type LeaseKeys = ReturnType<typeof leaseKeys>;

/**
 * Shard leases in Redis: each live gateway renews the leases of the shards it should own every
 * second; a lease not renewed for `ttlMs` may be taken over by another gateway.
 */
export function createShardLeases(redis: RedisClient, keys: { readonly leases: LeaseKeys }, ttlMs = 3000) {
  defineScripts(redis);
  return {
    ttlMs,
    /**
     * Releases `release`, takes or renews `wanted`; resolves with the shards granted. `caughtUp`: up
     * to when this gateway has read its buses and written what they carried (null: it cannot vouch).
     */
    async renew(
      gateway: string,
      wanted: readonly LeaseWish[],
      release: readonly number[],
      now = Date.now(),
      caughtUp: number | null = null,
    ): Promise<Set<number>> {
      const args = [
        gateway,
        String(now),
        String(ttlMs),
        caughtUp === null ? '' : String(caughtUp),
        String(release.length),
        ...release.map(String),
      ];
      for (const w of wanted)
        args.push(String(w.shard), w.since === null ? '' : String(w.since), String(w.users ?? 0));
      const granted = await redis.rollcallLease(keys.leases.holders, ...args);
      return new Set(granted.map(Number));
    },

    /** Every lease, live or expired. */
    async all(): Promise<Map<number, ShardHold>> {
      const raw = await redis.hgetall(keys.leases.holders);
      const out = new Map<number, ShardHold>();
      for (const [shard, value] of Object.entries(raw)) {
        const [owner, since, expires, users, caughtUp] = value.split('|');
        out.set(Number(shard), {
          owner: owner!,
          since: since ? Number(since) : null,
          expires: Number(expires),
          users: Number(users ?? 0),
          caughtUp: caughtUp ? Number(caughtUp) : null,
        });
      }
      return out;
    },
  };
}
export type ShardLeases = ReturnType<typeof createShardLeases>;
