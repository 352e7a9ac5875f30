import type { EventChannel, PlatformEvent } from '../domain/events';
import type { Db } from '../db/knex';
import { lastSeqs, markPublished, selectUnpublished, streamOf } from '../db/outbox';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';

export interface OutboxPublisherDeps {
  readonly db: Db;
  readonly send: (channel: EventChannel, body: unknown) => Promise<void>;
  /** Signs each event as sent (`kid`, `sig`). */
  readonly sign: (event: PlatformEvent & { seq: number }) => Promise<unknown>;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly pollMs?: number;
  readonly batchSize?: number;
}

/** Any number of gateways may run a publisher; one advisory lock lets one publish at a time, in order. */
const OUTBOX_LOCK = 0x726f6c6c; // "roll"

/**
 * Publishes the outbox to Moth in commit order (so per device in order), at least once: an event is
 * marked published only after Moth took it; a failure (Moth down) leaves it for the next pass.
 */
export function createOutboxPublisher(deps: OutboxPublisherDeps) {
  const pollMs = deps.pollMs ?? 100;
  const batchSize = deps.batchSize ?? 200;
  let stopped = true;
  let loop: Promise<void> = Promise.resolve();
  let wake: (() => void) | undefined;
  let failures = 0;

  /** One pass; resolves with the number of events published, rejects when Moth refused one. */
  async function publishOnce(): Promise<number> {
    const { sent, error } = await deps.db.transaction(async (trx) => {
      const { rows } = await trx.raw<{ rows: { locked: boolean }[] }>(
        'SELECT pg_try_advisory_xact_lock(?) AS locked',
        [OUTBOX_LOCK],
      );
      if (!rows[0]?.locked) return { sent: 0, error: undefined };
      const pending = await selectUnpublished(trx, batchSize);
      // Numbered as first sent, under the lock: contiguous per stream. A re-send keeps its number.
      const last = await lastSeqs(trx, [...new Set(pending.map(streamOf))]);
      const sent: { id: string; stream: string; seq: number }[] = [];
      let failure: unknown;
      for (const e of pending) {
        const stream = e.stream ?? streamOf(e);
        const seq = e.seq !== null ? Number(e.seq) : (last.get(stream) ?? 0) + 1;
        try {
          await deps.send(e.channel, await deps.sign({ ...e.body, seq }));
        } catch (err) {
          failure = err;
          break;
        }
        if (e.seq === null) last.set(stream, seq);
        sent.push({ id: e.id, stream, seq });
        deps.metrics.eventsPublished.inc({ channel: e.channel });
      }
      // What Moth took is marked (and committed) even when a later one failed.
      await markPublished(trx, sent);
      return { sent: sent.length, error: failure };
    });
    if (error) throw error instanceof Error ? error : new Error('Moth refused an event');
    return sent;
  }

  async function run() {
    while (!stopped) {
      let published = 0;
      try {
        published = await publishOnce();
        failures = 0;
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 50 === 0) {
          deps.logger.warn({ err: (err as Error).message, failures }, 'outbox publish failed; will retry');
        }
      }
      if (stopped) break;
      if (published >= batchSize) continue;
      const delay = failures > 0 ? Math.min(5000, pollMs * 2 ** Math.min(failures, 6)) : pollMs;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wake = undefined;
    }
  }

  return {
    publishOnce,
    start(): void {
      if (!stopped) return;
      stopped = false;
      loop = run();
    },
    /** Publishes right away instead of at the next poll. */
    nudge(): void {
      wake?.();
    },
    async stop(): Promise<void> {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}
