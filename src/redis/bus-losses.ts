import { decodeBusLosses, encodeBusLosses, type BusLoss } from '../domain/bus-losses';
import { shardOf } from '../domain/shards';
import type { RedisClient } from './connection';
import { groupBy, type LivenessKeys } from './liveness';

/** Per device, the rounds in which the gateway lost its bus: written by the gateway, read by the judge. */
export function createBusLossStore(
  redis: RedisClient,
  keys: { readonly liveness: LivenessKeys },
  shards: number,
) {
  const byShard = (ids: readonly string[]) => groupBy(ids, (id) => shardOf(id, shards));
  return {
    /** Replaces these devices' losses (an empty list removes the entry), one round trip per shard. */
    async write(losses: ReadonlyMap<string, readonly BusLoss[]>): Promise<void> {
      await Promise.all(
        [...byShard([...losses.keys()])].map(([s, ids]) => {
          const key = keys.liveness.shard(s).busLosses;
          const tx = redis.multi();
          for (const id of ids) {
            const list = losses.get(id)!;
            if (list.length === 0) tx.hdel(key, id);
            else tx.hset(key, id, encodeBusLosses(list));
          }
          return tx.exec();
        }),
      );
    },

    /** The losses of these devices (none for most). */
    async of(deviceIds: readonly string[]): Promise<Map<string, BusLoss[]>> {
      const out = new Map<string, BusLoss[]>();
      await Promise.all(
        [...byShard(deviceIds)].map(async ([s, ids]) => {
          const values = await redis.hmget(keys.liveness.shard(s).busLosses, ...ids);
          ids.forEach((id, i) => {
            const list = decodeBusLosses(values[i]);
            if (list.length > 0) out.set(id, list);
          });
        }),
      );
      return out;
    },
  };
}
export type BusLossStore = ReturnType<typeof createBusLossStore>;
