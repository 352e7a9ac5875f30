import { createHash } from 'node:crypto';

/** The shared bus of earlier versions is held like a shard, under this id. */
export const SHARED_BUS = -1;

/**
 * The shard a device belongs to: a stable hash of its id, so every process agrees without asking.
 * It runs for every heartbeat, so it is FNV-1a with MurmurHash3's finaliser (well spread, nothing to
 * keep secret) rather than a cryptographic digest.
 */
export function shardOf(deviceId: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < deviceId.length; i++) h = Math.imul(h ^ deviceId.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) % shards;
}

/**
 * Rendezvous (highest random weight) hashing: the owner of a shard among live gateways. A gateway
 * joining or leaving moves only the shards it wins or held, about 1/n of them.
 */
export function rendezvousOwner(shard: number, gateways: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestWeight = -1;
  for (const g of gateways) {
    const weight = createHash('sha256').update(`${shard}:${g}`).digest().readUInt32BE(0);
    if (weight > bestWeight || (weight === bestWeight && best !== undefined && g < best)) {
      best = g;
      bestWeight = weight;
    }
  }
  return best;
}

/** The shards a gateway should own among the live ones. */
export function shardsOwnedBy(gateway: string, gateways: readonly string[], shards: number): number[] {
  const out: number[] = [];
  for (let s = 0; s < shards; s++) if (rendezvousOwner(s, gateways) === gateway) out.push(s);
  return out;
}
