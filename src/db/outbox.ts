import type { OutgoingEvent, PlatformEvent, EventChannel } from '../domain/events';
import type { Queryable } from './knex';

/**
 * Appends events; call inside the transaction of the state change that caused them. An event whose
 * id is already there is left alone, so a re-run that derives its event id deterministically (a held
 * round) writes it once.
 */
export async function appendEvents(q: Queryable, events: readonly OutgoingEvent[]): Promise<void> {
  if (events.length === 0) return;
  // One parameter whatever the number of events: batches of thousands stay one cheap statement.
  await q.raw(
    `INSERT INTO outbox (event_id, channel, device_id, type, body)
     SELECT (e->'event'->>'eventId')::uuid, e->>'channel', (e->'event'->>'deviceId')::uuid, e->'event'->>'type', e->'event'
       FROM jsonb_array_elements(?::jsonb) AS e
     ON CONFLICT (event_id) DO NOTHING`,
    [JSON.stringify(events)],
  );
}

export interface PendingEvent {
  readonly id: string;
  readonly channel: EventChannel;
  readonly body: PlatformEvent;
}

/** The oldest unpublished events, in commit order. */
export async function selectUnpublished(q: Queryable, limit: number): Promise<PendingEvent[]> {
  return q('outbox')
    .select<PendingEvent[]>('id', 'channel', 'body')
    .whereNull('published_at')
    .orderBy('id')
    .limit(limit);
}

export async function markPublished(q: Queryable, ids: readonly string[]): Promise<void> {
  if (ids.length > 0) await q('outbox').whereIn('id', ids).update({ published_at: q.fn.now() });
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
