import { randomUUID } from 'node:crypto';
import type { PlatformEvent } from '../domain/events';
import {
  coolDownMs,
  dueAt,
  newWebhookSecret,
  wants,
  type Webhook,
  type WebhookSpec,
} from '../domain/webhooks';
import type { Db, Queryable } from './knex';
import { seal, unseal } from './sealing';

/** The sealed column of a webhook's secret (bound into its seal). */
const SECRET = 'webhooks.secret';

interface WebhookRow {
  id: string;
  url: string;
  events: Webhook['events'];
  offline_for_seconds: number | null;
  group_name: string | null;
  expected_disconnects: boolean;
  concurrency: number;
  secret: string;
  created_at: Date;
  consecutive_failures: number;
  circuit_open_until: Date | null;
}

const toWebhook = (r: WebhookRow): Webhook => ({
  id: r.id,
  url: r.url,
  events: r.events,
  offlineForSeconds: r.offline_for_seconds,
  group: r.group_name,
  expectedDisconnects: r.expected_disconnects,
  concurrency: r.concurrency,
  secret: unseal(r.secret, SECRET),
  createdAt: r.created_at,
  consecutiveFailures: r.consecutive_failures,
  circuitOpenUntil: r.circuit_open_until,
});

export type DeliveryStatus = 'PENDING' | 'DELIVERED' | 'FAILED' | 'SKIPPED';

export interface Delivery {
  readonly id: string;
  readonly webhookId: string;
  readonly eventId: string;
  readonly eventType: string;
  readonly deviceId: string | null;
  readonly body: PlatformEvent;
  readonly status: DeliveryStatus;
  readonly attempts: number;
  readonly lastStatusCode: number | null;
  readonly lastError: string | null;
  readonly dueAt: Date;
  readonly createdAt: Date;
  readonly finishedAt: Date | null;
}

interface DeliveryRow {
  id: string;
  webhook_id: string;
  event_id: string;
  event_type: string;
  device_id: string | null;
  body: PlatformEvent;
  status: DeliveryStatus;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  due_at: Date;
  created_at: Date;
  finished_at: Date | null;
}

const toDelivery = (r: DeliveryRow): Delivery => ({
  id: r.id,
  webhookId: r.webhook_id,
  eventId: r.event_id,
  eventType: r.event_type,
  deviceId: r.device_id,
  body: r.body,
  status: r.status,
  attempts: r.attempts,
  lastStatusCode: r.last_status_code,
  lastError: r.last_error,
  dueAt: r.due_at,
  createdAt: r.created_at,
  finishedAt: r.finished_at,
});

export async function createWebhook(q: Queryable, spec: WebhookSpec): Promise<Webhook> {
  const [row] = await q('webhooks')
    .insert({
      id: randomUUID(),
      url: spec.url,
      events: JSON.stringify(spec.events),
      offline_for_seconds: spec.offlineForSeconds ?? null,
      group_name: spec.group ?? null,
      expected_disconnects: spec.expectedDisconnects,
      concurrency: spec.concurrency,
      secret: seal(newWebhookSecret(), SECRET),
      // From the events numbered after it exists, not the stream's history.
      fanout_seq: q.raw(`coalesce((SELECT last_seq FROM event_streams WHERE stream = 'client'), 0)`),
    })
    .returning<WebhookRow[]>('*');
  return toWebhook(row!);
}

/** How many webhooks there are (not deleted). */
export async function countWebhooks(q: Queryable): Promise<number> {
  const [row] = await q('webhooks').whereNull('deleted_at').count<{ n: string }[]>({ n: '*' });
  return Number(row?.n ?? 0);
}

export async function listWebhooks(q: Queryable): Promise<Webhook[]> {
  const rows = (await q('webhooks').whereNull('deleted_at').orderBy('created_at')) as WebhookRow[];
  return rows.map(toWebhook);
}

export async function findWebhook(q: Queryable, id: string): Promise<Webhook | undefined> {
  const row = (await q('webhooks').where({ id }).whereNull('deleted_at').first()) as WebhookRow | undefined;
  return row && toWebhook(row);
}

/** Stops a webhook: nothing more is fanned out to it, its pending deliveries are skipped. */
export async function deleteWebhook(q: Queryable, id: string): Promise<boolean> {
  return (await q('webhooks').where({ id }).whereNull('deleted_at').update({ deleted_at: q.fn.now() })) > 0;
}

/**
 * Deliveries with their event's body: a delivery row holds only its event's id (its body is the
 * outbox's, never copied for every webhook; rows of older versions still hold a copy).
 */
const withBody = (q: Queryable) =>
  q('webhook_deliveries as d')
    .leftJoin('outbox as o', 'o.event_id', 'd.event_id')
    .select('d.*', q.raw('coalesce(d.body, o.body) AS body'));

export async function deliveriesOf(q: Queryable, webhookId: string, limit: number): Promise<Delivery[]> {
  const rows = (await withBody(q)
    .where('d.webhook_id', webhookId)
    .orderBy('d.created_at', 'desc')
    .limit(limit)) as DeliveryRow[];
  return rows.map(toDelivery);
}

/** The client events past a live webhook's cursor, in stream order (none for a deleted webhook). */
const EVENTS_PAST_CURSOR = `SELECT o.seq, o.body, o.device_id
     FROM webhooks w
     JOIN LATERAL (SELECT seq, body, device_id FROM outbox
                    WHERE stream = 'client' AND seq > w.fanout_seq ORDER BY seq LIMIT ?) o ON true
    WHERE w.id = ? AND w.deleted_at IS NULL
    ORDER BY o.seq`;

/** Writes deliveries (one parameter whatever their number) and moves the cursor forward, at once. */
const WRITE_DELIVERIES = `WITH moved AS (
       UPDATE webhooks SET fanout_seq = ? WHERE id = ? AND fanout_seq < ?
     ), written AS (
       INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, device_id, due_at, seq)
       SELECT gen_random_uuid(), ?, event_id, event_type, device_id, due_at, seq
         FROM jsonb_to_recordset(?::jsonb)
           AS d(event_id uuid, event_type text, device_id uuid, due_at timestamptz, seq bigint)
       ON CONFLICT (webhook_id, event_id) DO NOTHING
       RETURNING 1
     )
     SELECT count(*)::int AS created FROM written`;

/**
 * Reads the client events numbered since one webhook's cursor (in stream order, `limits.events` at
 * most), writes a delivery for each it wants (`limits.deliveries` at most: the cursor then stops after
 * the last written; past `limits.backlog` pending, the oldest are skipped), and moves its cursor with
 * the deliveries, in one statement: three round trips in all, for a storm's fan-out waits on them.
 * Whoever runs it and however often, each delivery is written once (one per webhook and event) and the
 * cursor only moves forward, so a crash or a second worker fans out nothing twice and skips nothing.
 * `webhook` says what it wants (its pump's reading, at most one run old); its cursor is read here.
 * Each webhook has its own cursor, moved by its own pump, so one whose receiver fails never holds up
 * another's fan-out. Returns how many it wrote and whether more events wait.
 */
export async function fanOutTo(
  db: Db,
  webhook: Webhook,
  limits: { readonly events: number; readonly deliveries: number; readonly backlog: number },
): Promise<{ created: number; more: boolean }> {
  const { rows: events } = await db.raw<{
    rows: { seq: string; body: PlatformEvent; device_id: string | null }[];
  }>(EVENTS_PAST_CURSOR, [limits.events, webhook.id]);
  if (events.length === 0) return { created: 0, more: false };
  const groups = webhook.group === null ? new Map<string, string | null>() : await groupsOf(db, events);
  const wanted = events
    .filter((e) => wants(webhook, e.body, e.device_id === null ? null : (groups.get(e.device_id) ?? null)))
    .slice(0, limits.deliveries + 1);
  const capped = wanted.length > limits.deliveries;
  const rows = wanted.slice(0, limits.deliveries).map((e) => ({
    event_id: e.body.eventId,
    event_type: e.body.type,
    device_id: e.device_id,
    due_at: dueAt(webhook, e.body),
    seq: e.seq,
  }));
  const cursor = Number((capped ? wanted[limits.deliveries - 1]! : events.at(-1)!).seq);
  const { rows: written } = await db.raw<{ rows: { created: number }[] }>(WRITE_DELIVERIES, [
    cursor,
    webhook.id,
    cursor,
    webhook.id,
    JSON.stringify(rows),
  ]);
  const created = written[0]!.created;
  if (created > 0) await trimBacklog(db, webhook.id, limits.backlog);
  return { created, more: capped || events.length === limits.events };
}

/** The group of each device of these events. */
async function groupsOf(q: Queryable, events: readonly { device_id: string | null }[]) {
  const ids = [...new Set(events.map((e) => e.device_id).filter((d): d is string => d !== null))];
  if (ids.length === 0) return new Map<string, string | null>();
  const rows = await q('devices')
    .whereIn('id', ids)
    .select<{ id: string; group_name: string | null }[]>('id', 'group_name');
  return new Map(rows.map((d) => [d.id, d.group_name]));
}

/**
 * A receiver's answer to an attempt, on its circuit: a success closes it; a failure counts, and past
 * the threshold opens it for its cool-down.
 */
export async function noteReceiverOutcome(q: Queryable, webhookId: string, ok: boolean): Promise<void> {
  if (ok) {
    await q('webhooks')
      .where({ id: webhookId })
      .whereNot({ consecutive_failures: 0 })
      .update({ consecutive_failures: 0, circuit_open_until: null });
    return;
  }
  const [row] = await q('webhooks')
    .where({ id: webhookId })
    .increment('consecutive_failures', 1)
    .returning<{ consecutive_failures: number }[]>('consecutive_failures');
  const coolDown = row && coolDownMs(row.consecutive_failures);
  if (coolDown)
    await q('webhooks')
      .where({ id: webhookId })
      .update({ circuit_open_until: q.raw(`now() + make_interval(secs => ?)`, [coolDown / 1000]) });
}

/**
 * A webhook's backlog: its pending deliveries, and the events of its types numbered past its cursor
 * (a receiver not answering has its news wait in the stream; its group is applied at fan-out), of
 * which its pump keeps `max` (passOverStale), so no more are counted.
 */
export async function pendingDeliveries(q: Queryable, webhookId: string, max: number): Promise<number> {
  const { rows } = await q.raw<{ rows: { n: string }[] }>(
    `SELECT (SELECT count(*) FROM webhook_deliveries WHERE webhook_id = w.id AND status = 'PENDING')
          + (SELECT count(*) FROM (SELECT 1 FROM outbox o
              WHERE o.stream = 'client' AND o.seq > w.fanout_seq
                AND o.type IN (SELECT jsonb_array_elements_text(w.events)) LIMIT ?) kept) AS n
       FROM webhooks w WHERE w.id = ?`,
    [max, webhookId],
  );
  return Number(rows[0]?.n ?? 0);
}

/**
 * Moves the cursor of a webhook that fell far behind (a receiver down for long) past all but the newest
 * `max` client events of its types, in one statement; nothing when no more than `max` events of any
 * type wait past it. Returns the stream numbers passed over (after `from`, through `to`), which the feed
 * still has. The cursor only moves forward, so a fan-out at the same time writes nothing twice.
 */
export async function passOverStale(
  q: Queryable,
  webhookId: string,
  max: number,
): Promise<{ from: number; to: number } | undefined> {
  const { rows } = await q.raw<{ rows: { from_seq: string; to_seq: string }[] }>(
    `WITH w AS (
       SELECT id, fanout_seq, events FROM webhooks
        WHERE id = ? AND deleted_at IS NULL
          AND fanout_seq + ? < coalesce((SELECT last_seq FROM event_streams WHERE stream = 'client'), 0)
     ), cut AS (
       SELECT w.id, w.fanout_seq, o.seq FROM w
         JOIN LATERAL (SELECT seq FROM outbox
                        WHERE stream = 'client' AND seq > w.fanout_seq
                          AND type IN (SELECT jsonb_array_elements_text(w.events))
                        ORDER BY seq DESC OFFSET ? LIMIT 1) o ON true
     )
     UPDATE webhooks SET fanout_seq = cut.seq FROM cut
      WHERE webhooks.id = cut.id AND webhooks.fanout_seq < cut.seq
     RETURNING cut.fanout_seq AS from_seq, cut.seq AS to_seq`,
    [webhookId, max, max],
  );
  const row = rows[0];
  return row && { from: Number(row.from_seq), to: Number(row.to_seq) };
}

/**
 * Keeps a webhook's backlog at most `max` pending deliveries: the oldest in the stream beyond are
 * skipped (an alert matters less the older it is), and say so in their log.
 */
async function trimBacklog(q: Queryable, webhookId: string, max: number): Promise<void> {
  await q.raw(
    `UPDATE webhook_deliveries SET status = 'SKIPPED', finished_at = now(), last_error = ?
      WHERE id IN (SELECT id FROM webhook_deliveries WHERE webhook_id = ? AND status = 'PENDING'
                    ORDER BY seq DESC NULLS LAST, id OFFSET ?)`,
    [`backlog over ${max}: oldest skipped`, webhookId, max],
  );
}

/**
 * The webhooks whose pump has work: client events numbered past its cursor, or deliveries due now.
 */
export async function webhooksWithWork(q: Queryable, limit: number): Promise<string[]> {
  const { rows } = await q.raw<{ rows: { id: string }[] }>(
    `SELECT id FROM webhooks w
      WHERE deleted_at IS NULL
        AND fanout_seq < coalesce((SELECT last_seq FROM event_streams WHERE stream = 'client'), 0)
     UNION
     SELECT DISTINCT webhook_id FROM webhook_deliveries WHERE status = 'PENDING' AND due_at <= now()
     LIMIT ?`,
    [limit],
  );
  return rows.map((r) => r.id);
}

/**
 * A webhook's deliveries due now, oldest first (in the stream's order when due together), but those
 * of `except` (already on their way).
 */
export async function dueDeliveries(
  q: Queryable,
  webhookId: string,
  limit: number,
  except: readonly string[] = [],
): Promise<Delivery[]> {
  const rows = (await withBody(q)
    .where({ 'd.webhook_id': webhookId, 'd.status': 'PENDING' })
    .where('d.due_at', '<=', q.fn.now())
    .whereRaw('NOT (d.id = ANY(?::uuid[]))', [[...except]])
    .orderBy([
      { column: 'd.due_at', order: 'asc' },
      { column: 'd.seq', order: 'asc' },
    ])
    .limit(limit)) as DeliveryRow[];
  return rows.map(toDelivery);
}

/** Ends every pending delivery of a webhook without sending it. */
export async function skipPending(q: Queryable, webhookId: string, why: string): Promise<void> {
  await q('webhook_deliveries')
    .where({ webhook_id: webhookId, status: 'PENDING' })
    .update({ status: 'SKIPPED', last_error: why, finished_at: q.fn.now() });
}

/** Records one attempt; with a final status, the delivery is over. */
export async function recordDeliveryAttempt(
  q: Queryable,
  id: string,
  outcome: { statusCode: number | null; error: string | null; final?: DeliveryStatus },
): Promise<void> {
  await q('webhook_deliveries')
    .where({ id, status: 'PENDING' })
    .update({
      attempts: q.raw('attempts + 1'),
      last_status_code: outcome.statusCode,
      last_error: outcome.error?.slice(0, 1000) ?? null,
      ...(outcome.final && { status: outcome.final, finished_at: q.fn.now() }),
    });
}

/** Records deliveries their receiver took (2xx), many in one statement. */
export async function recordDelivered(
  q: Queryable,
  delivered: readonly { id: string; statusCode: number }[],
): Promise<void> {
  if (delivered.length === 0) return;
  await q.raw(
    `UPDATE webhook_deliveries d
        SET attempts = d.attempts + 1, last_status_code = v.code, last_error = NULL,
            status = 'DELIVERED', finished_at = now()
       FROM (SELECT unnest(?::uuid[]) AS id, unnest(?::int[]) AS code) v
      WHERE d.id = v.id AND d.status = 'PENDING'`,
    [delivered.map((d) => d.id), delivered.map((d) => d.statusCode)],
  );
}

/** Ends a delivery without sending it (its webhook is gone, or the device came back in time). */
export async function skipDelivery(q: Queryable, id: string, why: string): Promise<void> {
  await q('webhook_deliveries')
    .where({ id, status: 'PENDING' })
    .update({ status: 'SKIPPED', last_error: why, finished_at: q.fn.now() });
}

/** Whether the device began a session after this time (it came back). */
export async function reconnectedSince(q: Queryable, deviceId: string, at: Date): Promise<boolean> {
  const row = await q('connection_sessions')
    .where({ device_id: deviceId })
    .where('started_at', '>', at)
    .first<{ id: string } | undefined>('id');
  return row !== undefined;
}
