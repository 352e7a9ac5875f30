/**
 * How our Redis keys (not BullMQ's) are named. Fleet-wide keys live under the queue prefix (a
 * `{tag}` prefix keeps them in one slot). A shard's keys share the hash tag `{s<n>}` (the prefix's
 * own braces removed), so on a Redis Cluster the shards spread over the masters and every script
 * touches one slot. Each module declares the keys it owns from these two.
 */
export interface KeySpace {
  fleet(name: string): string;
  shard(shard: number, name: string): string;
}

export function keySpace(prefix: string): KeySpace {
  const bare = prefix.replace(/[{}]/g, '');
  return {
    fleet: (name) => `${prefix}:${name}`,
    shard: (s, name) => `${bare}:{s${s}}:${name}`,
  };
}
