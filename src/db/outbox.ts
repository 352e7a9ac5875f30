import type { OutgoingEvent, PlatformEvent, EventChannel } from '../domain/events';
import type { Queryable } from './knex';

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
export const INSERT_EVENTS = `INSERT INTO outbox (event_id, channel, device_id, type, body)
     SELECT (e->'event'->>'eventId')::uuid, e->>'channel', (e->'event'->>'deviceId')::uuid, e->'event'->>'type', e->'event'
       FROM jsonb_array_elements(?::jsonb) AS e
     ON CONFLICT (event_id) DO NOTHING`;

export interface PendingEvent {
  readonly id: string;
  readonly channel: EventChannel;
  readonly body: PlatformEvent;
  /** Its stream and number there, once first published (a re-send keeps them). */
  readonly stream: string | null;
  readonly seq: string | null;
}

/** The stream an event belongs to: the client channel's, or the commands of one robot. */
export const streamOf = (e: Pick<PendingEvent, 'channel' | 'body'>) =>
  e.channel === 'client' ? 'client' : `device:${e.body.deviceId ?? ''}`;

/** The oldest unpublished events, in commit order. */
export async function selectUnpublished(q: Queryable, limit: number): Promise<PendingEvent[]> {
  return q('outbox')
    .select<PendingEvent[]>('id', 'channel', 'body', 'stream', 'seq')
    .whereNull('published_at')
    .orderBy('id')
    .limit(limit);
}

/** The last number given in each of these streams (0 for a new one). */
export async function lastSeqs(q: Queryable, streams: readonly string[]): Promise<Map<string, number>> {
  const rows = await q('event_streams')
    .whereIn('stream', streams as string[])
    .select<{ stream: string; last_seq: string }[]>('stream', 'last_seq');
  return new Map(rows.map((r) => [r.stream, Number(r.last_seq)]));
}

/** Marks events published with their stream numbers, and moves each stream's counter on. */
export async function markPublished(
  q: Queryable,
  sent: readonly { id: string; stream: string; seq: number }[],
): Promise<void> {
  if (sent.length === 0) return;
  await q.raw(
    `UPDATE outbox o SET published_at = now(), stream = v.stream, seq = v.seq
       FROM (SELECT unnest(?::bigint[]) AS id, unnest(?::text[]) AS stream, unnest(?::bigint[]) AS seq) v
      WHERE o.id = v.id`,
    [sent.map((e) => e.id), sent.map((e) => e.stream), sent.map((e) => e.seq)],
  );
  const last = new Map<string, number>();
  for (const e of sent) last.set(e.stream, Math.max(last.get(e.stream) ?? 0, e.seq));
  await q.raw(
    `INSERT INTO event_streams (stream, last_seq)
     SELECT unnest(?::text[]), unnest(?::bigint[])
     ON CONFLICT (stream) DO UPDATE SET last_seq = GREATEST(event_streams.last_seq, EXCLUDED.last_seq)`,
    [[...last.keys()], [...last.values()]],
  );
}

/** A stream's published events after number `after`, in order, as they were sent. */
export async function readStream(
  q: Queryable,
  stream: string,
  after: number,
  limit: number,
): Promise<{ seq: number; body: PlatformEvent }[]> {
  const rows = await q('outbox')
    .where({ stream })
    .where('seq', '>', after)
    .orderBy('seq')
    .limit(limit)
    .select<{ seq: string; body: PlatformEvent }[]>('seq', 'body');
  return rows.map((r) => ({ seq: Number(r.seq), body: r.body }));
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
