import type { OutgoingEvent, PlatformEvent, EventChannel } from '../domain/events';
import type { Db, Queryable } from './knex';
import { STREAMS_NUMBERED } from './notifications';

/**
 * Appends events; call inside the transaction of the state change that caused them. An event whose
 * id is already there is left alone, so a re-run that derives its event id deterministically (a held
 * round) writes it once.
 */
export async function appendEvents(q: Queryable, events: readonly OutgoingEvent[]): Promise<void> {
  if (events.length === 0) return;
  await q.raw(INSERT_EVENTS, [JSON.stringify(events)]);
}

/**
 * The one statement that writes events, from a JSON array of them: one parameter whatever their
 * number, so batches of thousands stay one cheap statement (and a CTE of another statement can use
 * it: a registration writes its device and event at once).
 */
export const INSERT_EVENTS = insertEventsFrom('jsonb_array_elements(?::jsonb) AS e');

/**
 * The statement that writes events, from `source`: a relation whose column `e` holds each event as
 * `appendEvents` takes it ({channel, event}). For a CTE whose events depend on what it changed.
 */
export function insertEventsFrom(source: string): string {
  return `INSERT INTO outbox (event_id, channel, device_id, type, body, created_at)
     SELECT (e->'event'->>'eventId')::uuid, e->>'channel', (e->'event'->>'deviceId')::uuid, e->'event'->>'type', e->'event',
            clock_timestamp()
       FROM ${source}
     ON CONFLICT (event_id) DO NOTHING`;
}

/** Only one process numbers at a time (a transaction-scoped advisory lock): numbers stay contiguous. */
const SEQUENCER_LOCK = 0x726f6c6d; // "rolm"

/**
 * Numbers the oldest events not yet numbered (up to `limit`, in the order they were written): each
 * gets the next number of its stream, and the streams' readers are told at commit. One call (the
 * migration's `rollcall_number_pending`) under the sequencer's lock; answers how many it numbered (0
 * when another process holds the lock).
 */
export async function numberPending(db: Db, limit: number): Promise<number> {
  const { rows } = await db.raw<{ rows: { numbered: number }[] }>(
    'SELECT rollcall_number_pending(?, ?, ?) AS numbered',
    [SEQUENCER_LOCK, limit, STREAMS_NUMBERED],
  );
  return rows[0]!.numbered;
}

/** A numbered event not yet taken by Moth. */
export interface UnpublishedEvent {
  readonly id: string;
  readonly channel: EventChannel;
  readonly stream: string;
  readonly seq: number;
  readonly body: PlatformEvent;
}

/** The client stream's numbered events not yet on Moth, in order. */
export async function unpublishedClientEvents(q: Queryable, limit: number): Promise<UnpublishedEvent[]> {
  const rows = await q('outbox')
    .select<UnpublishedEvent[]>('id', 'channel', 'stream', 'seq', 'body')
    .where({ stream: 'client' })
    .whereNull('published_at')
    .whereNotNull('seq')
    .orderBy('seq')
    .limit(limit);
  return rows.map((r) => ({ ...r, seq: Number(r.seq) }));
}

/**
 * Robots' command streams with numbered events not yet on Moth: the first `perStream` of each, in
 * order, leaving out the streams in `resting` (their robot's bus failed a moment ago), so a stream
 * that cannot be sent never holds up another.
 */
export async function unpublishedCommands(
  q: Queryable,
  options: { perStream: number; limit: number; resting: readonly string[] },
): Promise<UnpublishedEvent[]> {
  const { rows } = await q.raw<{ rows: UnpublishedEvent[] }>(
    `SELECT id, channel, stream, seq, body FROM (
       SELECT id, channel, stream, seq, body, row_number() OVER (PARTITION BY stream ORDER BY seq) AS k
         FROM outbox
        WHERE published_at IS NULL AND seq IS NOT NULL AND stream <> 'client' AND stream <> ALL(?::text[])
     ) e WHERE k <= ? ORDER BY stream, seq LIMIT ?`,
    [options.resting as string[], options.perStream, options.limit],
  );
  return rows.map((r) => ({ ...r, seq: Number(r.seq) }));
}

/** Marks events taken by Moth. */
export async function markPublished(q: Queryable, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await q.raw(`UPDATE outbox SET published_at = now() WHERE id = ANY(?::bigint[])`, [ids as string[]]);
}

/** The JSON a page of a stream may carry: it ends before the event that would pass it (one at least). */
export const STREAM_PAGE_BYTES = 1024 * 1024;

/**
 * A stream's events after number `after`, in order (numbered at commit: on Moth or not yet): at most
 * `limit` of them and STREAM_PAGE_BYTES of their JSON, so a page of large task payloads costs a reader
 * (and this process) no more than one of small events.
 */
export async function readStream(
  q: Queryable,
  stream: string,
  after: number,
  limit: number,
): Promise<{ seq: number; body: PlatformEvent }[]> {
  const { rows } = await q.raw<{ rows: { seq: string; body: PlatformEvent }[] }>(
    `SELECT seq, body FROM (
       SELECT seq, body, row_number() OVER w AS n, sum(octet_length(body::text)) OVER w AS upto
         FROM (SELECT seq, body FROM outbox WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?) page
       WINDOW w AS (ORDER BY seq)
     ) sized
     WHERE n = 1 OR upto <= ?
     ORDER BY seq`,
    [stream, after, limit, STREAM_PAGE_BYTES],
  );
  return rows.map((r) => ({ seq: Number(r.seq), body: r.body }));
}

/** The number of a stream's last event (0 before its first). */
export async function lastNumber(q: Queryable, stream: string): Promise<number> {
  const row = await q('event_streams').where({ stream }).first<{ last_seq: string } | undefined>('last_seq');
  return Number(row?.last_seq ?? 0);
}

/**
 * Marks the events published on `channel` in the last `seconds` as unpublished again. Moth has no
 * acknowledgements: frames written just before a session dropped may never have been relayed, so they
 * are sent again (same eventId; clients de-duplicate).
 */
export async function republishRecent(q: Queryable, channel: EventChannel, seconds: number): Promise<number> {
  return q('outbox')
    .where({ channel })
    .where('published_at', '>', q.raw(`now() - make_interval(secs => ?)`, [seconds]))
    .update({ published_at: null });
}

/**
 * How far behind the events are, in seconds (0: nothing waits): the oldest not yet numbered (the
 * sequencer is stuck), and the oldest client event numbered but not yet on Moth (the client channel
 * is down or slow).
 */
export async function eventLag(q: Queryable): Promise<{ numbering: number; moth: number }> {
  const { rows } = await q.raw<{ rows: { numbering: string; moth: string }[] }>(
    `SELECT coalesce((SELECT extract(epoch FROM clock_timestamp() - created_at) FROM outbox
                       WHERE seq IS NULL ORDER BY id LIMIT 1), 0) AS numbering,
            coalesce((SELECT extract(epoch FROM clock_timestamp() - numbered_at) FROM outbox
                       WHERE stream = 'client' AND published_at IS NULL AND seq IS NOT NULL
                       ORDER BY seq LIMIT 1), 0) AS moth`,
  );
  return { numbering: Number(rows[0]!.numbering), moth: Number(rows[0]!.moth) };
}
