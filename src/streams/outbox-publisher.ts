import { numbered, type EventChannel, type NumberedEvent } from '../domain/events';
import type { Db, Queryable } from '../db/knex';
import { listenFor, numberedKind, STREAMS_NUMBERED } from '../db/notifications';
import {
  markPublished,
  unpublishedClientEvents,
  unpublishedCommands,
  type UnpublishedEvent,
} from '../db/outbox';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import { createLoop } from './loop';

export interface OutboxPublisherDeps {
  readonly db: Db;
  /** Sends on the client channel (paced there for what Moth carries without loss). */
  readonly sendClient: (body: unknown) => Promise<void>;
  /** Sends a command on its robot's bus. */
  readonly sendCommand: (body: unknown) => Promise<void>;
  /** Signs each event as sent (`kid`, `sig`). */
  readonly sign: (event: NumberedEvent) => Promise<unknown>;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly pollMs?: number;
  readonly batchSize?: number;
}

/** Any number of gateways may run the publishers; a lock per kind of stream lets one publish it at a time. */
const CLIENT_LOCK = 0x726f6c6c; // "roll"
const COMMANDS_LOCK = 0x726f6c63; // "rolc"
/** A robot's stream whose bus failed waits this long before it is tried again (doubling, to the max). */
const COMMAND_RETRY_MS = 500;
const COMMAND_RETRY_MAX_MS = 30_000;
/** Robots' streams sent at once, and events of each per pass. */
const COMMAND_STREAMS_AT_ONCE = 32;
const COMMANDS_PER_STREAM = 20;
/**
 * A pass over the robots' streams reads again, under the lock it holds, what was numbered while it
 * sent, for up to this long: in a storm a pass took 0.15-0.6 s, and a command numbered just after
 * its read waited for its mark, its commit and the next pass's begin, lock and read (up to 1.15 s).
 */
const COMMAND_PASS_MS = 1000;

/**
 * Runs `publish` under the lock of its kind of stream and marks what Moth took, even when one
 * failed; with `forMs`, again in the same transaction while it finds events, for up to that long.
 * Answers what its last read found.
 */
async function underLock(
  db: Db,
  lock: number,
  publish: (q: Queryable, sent: string[]) => Promise<number>,
  forMs = 0,
): Promise<number> {
  const { read, failure } = await db.transaction(async (trx) => {
    const { rows } = await trx.raw<{ rows: { locked: boolean }[] }>(
      'SELECT pg_try_advisory_xact_lock(?) AS locked',
      [lock],
    );
    if (!rows[0]?.locked) return { read: 0, failure: undefined };
    const until = Date.now() + forMs;
    let read = 0;
    let failure: unknown;
    do {
      const ids: string[] = [];
      try {
        read = await publish(trx, ids);
      } catch (err) {
        failure = err;
      }
      // Marked before the next read, which then finds only what is newer.
      await markPublished(trx, ids);
    } while (failure === undefined && read > 0 && Date.now() < until);
    return { read, failure };
  });
  if (failure) throw failure instanceof Error ? failure : new Error('Moth refused an event');
  return read;
}

/** Robots' streams whose bus failed, each resting (doubling, to the max) before it is tried again. */
function createResting() {
  const resting = new Map<string, { until: number; failures: number }>();
  return {
    /** The streams resting now (those whose rest is over are forgotten). */
    streams(): string[] {
      const now = Date.now();
      for (const [stream, r] of resting) if (r.until <= now) resting.delete(stream);
      return [...resting.keys()];
    },
    /** The stream failed: it rests; answers its failures in a row. */
    failed(stream: string): number {
      const failures = (resting.get(stream)?.failures ?? 0) + 1;
      const wait = Math.min(COMMAND_RETRY_MAX_MS, COMMAND_RETRY_MS * 2 ** (failures - 1));
      resting.set(stream, { until: Date.now() + wait, failures });
      return failures;
    },
    sent(stream: string): void {
      resting.delete(stream);
    },
  };
}

/** Runs `each` on every item, at most `width` at once. */
async function eachAtMost<T>(width: number, items: T[], each: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: Math.min(width, queue.length) }, async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) await each(next);
    }),
  );
}

async function send(deps: OutboxPublisherDeps, channel: EventChannel, e: UnpublishedEvent): Promise<void> {
  const signed = await deps.sign(numbered(e.body, e.stream, e.seq));
  await (channel === 'client' ? deps.sendClient(signed) : deps.sendCommand(signed));
  deps.metrics.eventsPublished.inc({ channel });
}

/** One pass over the client stream; true when a whole batch went (more may wait). */
async function publishClientStream(deps: OutboxPublisherDeps, batchSize: number): Promise<boolean> {
  const n = await underLock(deps.db, CLIENT_LOCK, async (q, sent) => {
    const pending = await unpublishedClientEvents(q, batchSize);
    for (const e of pending) {
      await send(deps, 'client', e);
      sent.push(e.id);
    }
    return pending.length;
  });
  return n >= batchSize;
}

/** One read of the robots' streams, sent side by side; a stream that fails rests, the others go on. */
function sendCommandsDue(
  deps: OutboxPublisherDeps,
  limit: number,
  resting: ReturnType<typeof createResting>,
) {
  return async (q: Queryable, sent: string[]): Promise<number> => {
    const pending = await unpublishedCommands(q, {
      perStream: COMMANDS_PER_STREAM,
      limit,
      resting: resting.streams(),
    });
    const streams = new Map<string, UnpublishedEvent[]>();
    for (const e of pending) streams.set(e.stream, [...(streams.get(e.stream) ?? []), e]);
    const sendStream = async (events: UnpublishedEvent[]) => {
      for (const e of events) {
        try {
          await send(deps, 'device', e);
        } catch (err) {
          const failures = resting.failed(e.stream);
          deps.logger.warn({ stream: e.stream, err: (err as Error).message, failures }, 'command not sent');
          return;
        }
        sent.push(e.id);
      }
      resting.sent(events[0]!.stream);
    };
    await eachAtMost(COMMAND_STREAMS_AT_ONCE, [...streams.values()], sendStream);
    return pending.length;
  };
}

/** One pass over the robots' streams; true when its last read was a whole batch (more may wait). */
async function publishCommandStreams(
  deps: OutboxPublisherDeps,
  batchSize: number,
  resting: ReturnType<typeof createResting>,
): Promise<boolean> {
  const limit = batchSize * COMMANDS_PER_STREAM;
  const n = await underLock(deps.db, COMMANDS_LOCK, sendCommandsDue(deps, limit, resting), COMMAND_PASS_MS);
  return n >= limit;
}

/**
 * Publishes the numbered streams on Moth, at least once, each stream in order and on its own: the
 * client stream on the client channel, paced for what Moth carries; each robot's commands on its own
 * bus, independently, so a TASK_ABORTED never waits behind client events, and a robot whose bus is
 * down holds only its own stream. An event is marked published only after Moth took it; the feed
 * and the live streams do not wait for this (they read the numbered streams).
 */
export function createOutboxPublisher(deps: OutboxPublisherDeps) {
  const pollMs = deps.pollMs ?? 100;
  const batchSize = deps.batchSize ?? 200;
  const resting = createResting();

  const publishClient = () => publishClientStream(deps, batchSize);
  const publishCommands = () => publishCommandStreams(deps, batchSize, resting);

  const loops = [
    createLoop({ name: 'client event publishing', pass: publishClient, pollMs, logger: deps.logger }),
    createLoop({ name: 'command publishing', pass: publishCommands, pollMs, logger: deps.logger }),
  ];
  let listening: { close(): Promise<void> } | undefined;
  // Each loop is woken by the numberings of its own kind of stream only.
  const nudge = (payload?: string) => {
    if (numberedKind(payload, 'client')) loops[0]!.wake();
    if (numberedKind(payload, 'device')) loops[1]!.wake();
  };

  return {
    /** One pass of each, side by side, as their loops run (tests); rejects if either failed. */
    async publishOnce(): Promise<void> {
      const failed = (await Promise.allSettled([publishClient(), publishCommands()])).find(
        (r) => r.status === 'rejected',
      );
      if (failed) throw failed.reason;
    },
    /** The client channel is back: its stream goes out now rather than after the backoff. */
    clientChannelOpen(): void {
      loops[0]!.retryNow();
    },
    start(): void {
      for (const l of loops) l.start();
      listening ??= listenFor(deps.db, STREAMS_NUMBERED, nudge, (err) =>
        deps.logger.warn({ err: err.message }, 'lost the numbering notifications; polling meanwhile'),
      );
    },
    async stop(): Promise<void> {
      await listening?.close();
      listening = undefined;
      await Promise.all(loops.map((l) => l.stop()));
    },
  };
}
