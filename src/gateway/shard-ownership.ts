import { SHARED_BUS, shardsOwnedBy } from '../domain/shards';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import type { GatewayRegistry } from '../redis/rounds';
import type { ShardLeases } from '../redis/shard-leases';
import type { DeviceBuses } from './device-buses';

export interface ShardOwnershipDeps {
  readonly id: string;
  readonly shards: number;
  readonly sharedBus: boolean;
  readonly gateways: GatewayRegistry;
  readonly leases: ShardLeases;
  readonly buses: DeviceBuses;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** When this gateway was last behind its buses: a shard's sessions count as open from then at most. */
  readonly brokenAt: () => number;
  readonly broke: () => void;
  /** Up to when this gateway has read and written its buses (null: it cannot vouch). */
  readonly vouch: () => Promise<number | null>;
  /** Writes the rounds in which buses were lost, so the rounds vouched for below excuse them. */
  readonly reportBusLosses: () => Promise<void>;
}

/**
 * Which shards this gateway holds: those it should own among the live gateways (rendezvous
 * hashing), their leases renewed with since when all their sessions have been open (and it has not
 * been behind them) and up to when it has read and written them, the others released. Calls at once share one renewal; a failure is logged and marks the writes broken.
 */
export function createShardOwnership(deps: ShardOwnershipDeps) {
  const { id, buses, metrics } = deps;
  let renewing: Promise<void> | undefined;
  let stopped = false;

  async function renew(): Promise<void> {
    // First: a slow write found here makes the leases below say so.
    const caughtUp = await deps.vouch();
    await deps.reportBusLosses();
    await deps.gateways.report(id);
    const live = await deps.gateways.live();
    if (!live.includes(id)) live.push(id);
    const desired = new Set(shardsOwnedBy(id, live, deps.shards));
    if (deps.sharedBus && desired.has(0)) desired.add(SHARED_BUS);
    const heldSince = buses.heldSince();
    const wanted = [...desired].map((shard) => {
      const since = heldSince.get(shard) ?? null;
      return {
        shard,
        since: since === null ? null : Math.max(since, deps.brokenAt()),
        users: shard === SHARED_BUS ? buses.sharedUsers() : 0,
      };
    });
    const release = buses.held().filter((s) => !desired.has(s));
    const granted = await deps.leases.renew(id, wanted, release, Date.now(), caughtUp);
    buses.hold(granted);
    metrics.shardsHeld.set([...granted].filter((s) => s !== SHARED_BUS).length);
    const open = buses.openSessionCount();
    metrics.busSessions.set({ state: 'open' }, open);
    metrics.busSessions.set({ state: 'down' }, buses.sessionCount() - open);
  }

  return {
    renew(): Promise<void> {
      renewing ??= (stopped ? Promise.resolve() : renew())
        .catch((err: Error) => {
          deps.broke();
          deps.logger.warn({ err: err.message }, 'could not renew shard leases');
        })
        .finally(() => (renewing = undefined));
      return renewing;
    },
    /** Hands `held` over at once rather than leaving the leases to expire (close their buses first). */
    async release(held: readonly number[]): Promise<void> {
      // Not handed over: the leases expire by themselves, three periods later.
      const warn = (what: string) => (err: Error) =>
        deps.logger.warn({ err: err.message }, `could not ${what}; it expires by itself`);
      await deps.leases.renew(id, [], held).catch(warn('release the shard leases'));
      await deps.gateways.remove(id).catch(warn('leave the gateway registry'));
    },
    /** Waits for a renewal under way, and renews no more. */
    async pause(): Promise<void> {
      stopped = true;
      await renewing;
    },
  };
}
