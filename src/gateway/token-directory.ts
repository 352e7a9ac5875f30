import type { Logger } from '../logger';
import type { CachedToken, Liveness } from '../redis/liveness';
import { setBounded } from './bounded-map';

/** How long a token hash that matched no device is refused without asking Postgres again. */
const NEGATIVE_TTL_MS = 30_000;
const NEGATIVE_MAX = 100_000;
/**
 * Token hash -> device, for heartbeats on the shared bus (which names no device). Revocation does not
 * depend on it: the shard's cache in Redis holds the tombstone, and a refusal evicts the entry here.
 */
const KNOWN_MAX = 100_000;

/**
 * Which device a token hash is, as the ingest knows it: hashes resolved from Postgres (and cached in
 * Redis for every gateway), and hashes that matched nobody, refused for a while without asking again.
 * Both evict their oldest entries past their bound.
 */
export function createTokenDirectory(deps: {
  lookupTokens: (hashes: readonly string[]) => Promise<CachedToken[]>;
  liveness: Pick<Liveness, 'cacheTokens'>;
  logger: Logger;
}) {
  const known = new Map<string, string>();
  const negative = new Map<string, number>();
  return {
    deviceOf: (hash: string) => known.get(hash),
    /** Matched nobody a moment ago: refused without a lookup. */
    refused(hash: string): boolean {
      const until = negative.size === 0 ? undefined : negative.get(hash);
      return until !== undefined && until > Date.now();
    },
    /** Resolves token hashes from Postgres (caching them in Redis): hash -> device. */
    async resolve(hashes: readonly string[]): Promise<Map<string, string>> {
      try {
        const found = await deps.lookupTokens(hashes);
        await deps.liveness.cacheTokens(found);
        const resolved = new Map(found.map((f) => [f.tokenHash, f.deviceId]));
        for (const f of found) setBounded(known, KNOWN_MAX, f.tokenHash, f.deviceId);
        const until = Date.now() + NEGATIVE_TTL_MS;
        for (const h of hashes) if (!resolved.has(h)) setBounded(negative, NEGATIVE_MAX, h, until);
        return resolved;
      } catch (err) {
        deps.logger.error({ err: (err as Error).message }, 'token lookup failed');
        return new Map();
      }
    },
    forget: (hash: string) => void known.delete(hash),
    clear: () => known.clear(),
  };
}
export type TokenDirectory = ReturnType<typeof createTokenDirectory>;
