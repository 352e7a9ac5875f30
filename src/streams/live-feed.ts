import type { ServerResponse } from 'node:http';
import { numbered, type NumberedEvent, type PlatformEvent } from '../domain/events';
import type { Logger } from '../logger';
import { createLoop, type Loop } from './loop';

export interface LiveFeedDeps {
  /** A stream's events after a number, in order. */
  readonly read: (
    stream: string,
    after: number,
    limit: number,
  ) => Promise<{ seq: number; body: PlatformEvent }[]>;
  /** Signs an event as the feed serves it. */
  readonly sign: (event: NumberedEvent) => Promise<unknown>;
  /** Wakes the feed when streams have new events (a Postgres notification); answers how to stop. */
  readonly listen: (wake: () => void) => { close(): Promise<void> };
  readonly logger: Logger;
  readonly onCut?: () => void;
  /** The poll behind the notifications. */
  readonly pollMs?: number;
  /** A watcher with more than this buffered, unread, is cut off (it resumes from its last id). */
  readonly maxBufferedBytes?: number;
  /** Comment lines this often keep proxies from closing a quiet stream. */
  readonly keepAliveMs?: number;
  /** Passes come at most this often: what is numbered meanwhile goes out together. */
  readonly gatherMs?: number;
}

interface Watcher {
  readonly stream: string;
  /** Who watches (one robot, or one operator address): what its cap counts. */
  readonly caller: string;
  /** The last number sent to it. */
  cursor: number;
  readonly res: ServerResponse;
  /** Catching up on its own, or live (served by the feed's shared reads). */
  mode: 'catching up' | 'live';
}

const PAGE = 500;

/** A count per key, forgotten at 0. */
function createCounts() {
  const counts = new Map<string, number>();
  return {
    add: (key: string) => void counts.set(key, (counts.get(key) ?? 0) + 1),
    remove(key: string): void {
      const left = (counts.get(key) ?? 0) - 1;
      if (left <= 0) counts.delete(key);
      else counts.set(key, left);
    },
    of: (key: string) => counts.get(key) ?? 0,
  };
}

/** A batch of events, each signed and framed once, and the whole batch encoded once. */
interface Batch {
  readonly events: readonly { seq: number; frame: string }[];
  readonly whole: Buffer;
}

async function framed(
  sign: LiveFeedDeps['sign'],
  stream: string,
  rows: { seq: number; body: PlatformEvent }[],
): Promise<Batch> {
  const events = await Promise.all(
    rows.map(async (r) => ({
      seq: r.seq,
      frame: `id: ${r.seq}\ndata: ${JSON.stringify(await sign(numbered(r.body, stream, r.seq)))}\n\n`,
    })),
  );
  return { events, whole: Buffer.from(events.map((e) => e.frame).join('')) };
}

/**
 * Whether the watcher is to be cut off (and then cuts it): when it is gone, or when more than the
 * bound still waits in its socket from what it was sent before (it did not read meanwhile).
 */
function cut(w: Watcher, maxBuffered: number, onCut: (() => void) | undefined): boolean {
  if (w.res.destroyed) return true;
  if (w.res.writableLength <= maxBuffered) return false;
  onCut?.();
  w.res.destroy();
  return true;
}

/**
 * Writes a batch to a watcher unless `cutOff`: the same bytes to every watcher that has none of it
 * (the usual case), only what it lacks to one that has some. False when it was cut off.
 */
function sendTo(w: Watcher, batch: Batch, cutOff: () => boolean): boolean {
  if (cutOff()) return false;
  const { events } = batch;
  if (events.length === 0 || events.at(-1)!.seq <= w.cursor) return true;
  if (events[0]!.seq > w.cursor) w.res.write(batch.whole);
  else
    w.res.write(
      events
        .filter((e) => e.seq > w.cursor)
        .map((e) => e.frame)
        .join(''),
    );
  w.cursor = events.at(-1)!.seq;
  return true;
}

/** One read per stream watched live, written to each of its watchers; true when more wait. */
async function passLive(
  deps: LiveFeedDeps,
  watchers: ReadonlySet<Watcher>,
  send: (w: Watcher, batch: Batch) => boolean,
): Promise<boolean> {
  const streams = new Map<string, Watcher[]>();
  for (const w of watchers)
    if (w.mode === 'live') streams.set(w.stream, [...(streams.get(w.stream) ?? []), w]);
  let more = false;
  for (const [stream, list] of streams) {
    const from = list.reduce((m, w) => Math.min(m, w.cursor), Infinity);
    const batch = await framed(deps.sign, stream, await deps.read(stream, from, PAGE));
    more ||= batch.events.length === PAGE;
    for (const w of list) send(w, batch);
  }
  return more;
}

/** While someone watches: the loop, the numbering notifications, and comments that keep proxies open. */
function createRunning(deps: LiveFeedDeps, loop: Loop, watchers: ReadonlySet<Watcher>) {
  let listening: { close(): Promise<void> } | undefined;
  let keepAlive: NodeJS.Timeout | undefined;
  return {
    start(): void {
      loop.start();
      listening ??= deps.listen(() => loop.wake());
      keepAlive ??= setInterval(() => {
        for (const w of watchers) if (!w.res.destroyed) w.res.write(': keep-alive\n\n');
      }, deps.keepAliveMs ?? 15_000);
    },
    async stopIfIdle(): Promise<void> {
      if (watchers.size > 0) return;
      clearInterval(keepAlive);
      keepAlive = undefined;
      const l = listening;
      listening = undefined;
      await l?.close();
      await loop.stop();
    },
  };
}

/**
 * Live streams of the numbered events as Server-Sent Events, for any number of watchers on one web
 * process: each new watcher catches up on its own from where it resumes, then joins the live set,
 * whose streams are read once per wake (a commit's notification, or the poll) and written to every
 * watcher of each, a batch at a time. A watcher too slow to take what it is sent (more than
 * `maxBufferedBytes` still waiting in its socket when the next batch comes) is cut off, so it never
 * holds more than that and a batch, nor anyone else up; it resumes from its last id. Runs only
 * while someone watches.
 */
export function createLiveFeed(deps: LiveFeedDeps) {
  const maxBuffered = deps.maxBufferedBytes ?? 1 << 20;
  const watchers = new Set<Watcher>();
  const perCaller = createCounts();
  const send = (w: Watcher, batch: Batch) => sendTo(w, batch, () => cut(w, maxBuffered, deps.onCut));
  const loop = createLoop({
    name: 'live feed',
    pass: () => passLive(deps, watchers, send),
    pollMs: deps.pollMs ?? 250,
    // During a storm the numberings come a few events at a time, a millisecond apart: a pass for each
    // wrote a handful of events to every watcher, one write each (the web's CPU went to writev, and
    // the watchers' to reading). What was numbered within 50 ms is read and written as one batch.
    gatherMs: deps.gatherMs ?? 50,
    logger: deps.logger,
  });

  async function catchUp(w: Watcher): Promise<void> {
    for (;;) {
      const batch = await framed(deps.sign, w.stream, await deps.read(w.stream, w.cursor, PAGE));
      if (!send(w, batch)) return;
      if (batch.events.length < PAGE) break;
    }
    w.mode = 'live';
    // What was numbered while it caught up comes with the next pass.
    loop.wake();
  }

  const running = createRunning(deps, loop, watchers);

  return {
    /** Streams `stream` after number `after` to `res` (already answered 200, text/event-stream). */
    watch(stream: string, after: number, res: ServerResponse, caller: string): void {
      const w: Watcher = { stream, caller, cursor: after, res, mode: 'catching up' };
      watchers.add(w);
      perCaller.add(caller);
      res.on('close', () => {
        watchers.delete(w);
        perCaller.remove(caller);
        void running.stopIfIdle();
      });
      running.start();
      catchUp(w).catch((err: Error) => {
        deps.logger.warn({ err: err.message, stream }, 'live feed watcher failed; cut off');
        res.destroy();
      });
    },
    watchers: () => watchers.size,
    /** How many streams this caller watches now. */
    watchedBy: (caller: string) => perCaller.of(caller),
    /** Cuts every watcher off (they resume elsewhere) and stops. */
    async close(): Promise<void> {
      for (const w of watchers) w.res.destroy();
      watchers.clear();
      await running.stopIfIdle();
    },
  };
}

export type LiveFeed = ReturnType<typeof createLiveFeed>;
