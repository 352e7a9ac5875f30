import { tokenHash } from '../domain/credentials';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import { decodeInbound } from '../moth/codec';
import type { HeardBatch, HeartbeatInput, Liveness } from '../redis/liveness';

export interface HeartbeatIngestDeps {
  readonly liveness: Pick<Liveness, 'recordHeartbeats' | 'cacheTokens' | 'forgetDevice'>;
  /** Resolves token hashes the cache does not know, from Postgres. */
  readonly lookupTokens: (hashes: readonly string[]) => Promise<{ tokenHash: string; deviceId: string }[]>;
  /** Makes a device CONNECTED (first or recovered heartbeat); resolves false when it already was. */
  readonly connect: (deviceId: string, round: number) => Promise<boolean>;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly maxBatch?: number;
  readonly maxDelayMs?: number;
  /** Called when a batch could not be written: this gateway did not hear that round reliably. */
  readonly onWriteFailure?: () => void;
  /**
   * Backpressure: called with true when writes fall behind (stop reading frames), false when they
   * caught up. Without it a flood would queue in memory without bound.
   */
  readonly onBackpressure?: (behind: boolean) => void;
}

/** Batches waiting for Redis beyond which reading pauses. */
const MAX_BATCHES_IN_FLIGHT = 6;
/**
 * Batches written at once: Redis runs one script at a time, but the next ones already on the wire
 * keep it busy while we parse an answer and read more frames (3 measured best in `npm run bench`).
 * Order between batches does not matter (a device's heard round only ever goes up).
 */
const WRITERS = 3;

/** How long a token hash that matched no device is refused without asking Postgres again. */
const NEGATIVE_TTL_MS = 30_000;
const NEGATIVE_MAX = 100_000;
const CONNECT_CONCURRENCY = 16;

/**
 * Heartbeat ingestion: decodes frames, hashes tokens, and records heard rounds in Redis in batches
 * (one round trip per batch). A device absent from the connected index is connected at once.
 * Malformed frames, unknown or revoked tokens and other message types are dropped and counted.
 */
export function createHeartbeatIngest(deps: HeartbeatIngestDeps) {
  const maxBatch = deps.maxBatch ?? 1000;
  const maxDelayMs = deps.maxDelayMs ?? 5;
  let batch: HeartbeatInput[] = [];
  let timer: NodeJS.Timeout | undefined;
  const writers: Promise<void>[] = Array.from({ length: WRITERS }, () => Promise.resolve());
  let next = 0;
  let queued = 0;
  let paused = false;
  const negative = new Map<string, number>();
  const count = (result: string, n = 1) => deps.metrics.heartbeats.inc({ result }, n);

  function push(frame: Buffer): void {
    const msg = decodeInbound(frame);
    if (msg.kind === 'malformed') return count('malformed');
    if (msg.kind === 'ignored') return count('ignored');
    const hash = tokenHash(msg.token);
    const refusedUntil = negative.get(hash);
    if (refusedUntil !== undefined && refusedUntil > Date.now()) return count('unknown_token');
    batch.push({ tokenHash: hash, round: msg.round });
    if (batch.length >= maxBatch) void flush();
    else timer ??= setTimeout(() => void flush(), maxDelayMs);
  }

  /** Starts writing the current batch; resolves when every batch started so far is written. */
  function flush(): Promise<void> {
    clearTimeout(timer);
    timer = undefined;
    if (batch.length === 0) return Promise.all(writers).then(() => {});
    const items = batch;
    batch = [];
    queued++;
    if (queued > MAX_BATCHES_IN_FLIGHT && !paused) {
      paused = true;
      deps.onBackpressure?.(true);
    }
    const slot = next++ % WRITERS;
    writers[slot] = writers[slot]!.then(() =>
      write(items)
        .catch((err: unknown) => {
          deps.logger.error({ err: (err as Error).message }, 'heartbeat batch failed');
        })
        .finally(() => {
          queued--;
          if (paused && queued <= 1) {
            paused = false;
            deps.onBackpressure?.(false);
          }
        }),
    );
    return Promise.all(writers).then(() => {});
  }

  async function write(items: HeartbeatInput[]): Promise<void> {
    let result: HeardBatch;
    try {
      result = await deps.liveness.recordHeartbeats(items);
    } catch (err) {
      count('write_failed', items.length);
      deps.onWriteFailure?.();
      deps.logger.error({ err: (err as Error).message, lost: items.length }, 'could not record heartbeats');
      return;
    }
    let { heard, stale, revoked } = result;
    const fresh = [...result.fresh];
    let unknown = result.unknown.length;
    if (unknown > 0) {
      const resolved = await resolveUnknown([...new Set(result.unknown)]);
      const retry = items.filter((i) => resolved.has(i.tokenHash));
      unknown -= retry.length;
      if (retry.length > 0) {
        const again = await deps.liveness.recordHeartbeats(retry);
        heard += again.heard;
        stale += again.stale;
        revoked += again.revoked;
        unknown += again.unknown.length;
        fresh.push(...again.fresh);
      }
    }
    // Counted per batch, not per heartbeat: this is the hot path.
    if (heard) count('accepted', heard);
    if (stale) count('stale', stale);
    if (unknown + revoked) count('unknown_token', unknown + revoked);
    await connectAll(fresh);
  }

  async function resolveUnknown(hashes: string[]): Promise<Set<string>> {
    try {
      const found = await deps.lookupTokens(hashes);
      await deps.liveness.cacheTokens(found);
      const known = new Set(found.map((f) => f.tokenHash));
      const until = Date.now() + NEGATIVE_TTL_MS;
      for (const h of hashes) {
        if (known.has(h)) continue;
        if (negative.size >= NEGATIVE_MAX) negative.delete(negative.keys().next().value!);
        negative.set(h, until);
      }
      return known;
    } catch (err) {
      deps.logger.error({ err: (err as Error).message }, 'token lookup failed');
      return new Set();
    }
  }

  async function connectAll(fresh: { deviceId: string; round: number }[]) {
    for (let i = 0; i < fresh.length; i += CONNECT_CONCURRENCY) {
      await Promise.all(
        fresh.slice(i, i + CONNECT_CONCURRENCY).map(async ({ deviceId, round }) => {
          try {
            if (await deps.connect(deviceId, round)) deps.metrics.transitions.inc({ to: 'CONNECTED' });
          } catch (err) {
            // Out of the index again, so the next heartbeat retries the transition.
            deps.logger.error({ err: (err as Error).message, deviceId }, 'connect transition failed');
            await deps.liveness.forgetDevice(deviceId).catch(() => {});
          }
        }),
      );
    }
  }

  return {
    push,
    flush,
    async close(): Promise<void> {
      await flush();
    },
  };
}
export type HeartbeatIngest = ReturnType<typeof createHeartbeatIngest>;
