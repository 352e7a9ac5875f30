import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents, numberPending } from '../../src/db/outbox';
import { createWebhook, fanOutTo, pendingDeliveries } from '../../src/db/webhooks';
import { createDestinationPolicy } from '../../src/domain/destinations';
import { clientEvent, type EventType } from '../../src/domain/events';
import { createLogger } from '../../src/logger';
import { createDeliverWebhook } from '../../src/operations/deliver-webhook';
import { createTestDatabase } from '../support/database';

// One webhook's pump against real Postgres and a receiver over HTTP: a pump whose receiver answers
// and that ran dry waits a moment for news before it gives up its slot, so a storm's next events go
// out in the same run rather than after a new job; a receiver's backlog is bounded, in its
// deliveries and in the stream, keeping the newest.

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let receiver: Server;
let url: string;
const received: string[] = [];
/** The events the receiver took, in the order they arrived. */
const receivedEvents: string[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      received.push(String(req.headers['webhook-id']));
      receivedEvents.push((JSON.parse(body) as { eventId: string }).eventId);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
});
afterAll(async () => {
  await new Promise((resolve) => receiver.close(resolve));
  await database.drop();
});

/** Events written and numbered as a commit would (one the webhooks want, unless of `type`). */
async function registered(n = 1, type: EventType = 'DEVICE_REGISTERED'): Promise<string[]> {
  const events = Array.from({ length: n }, () => clientEvent(type, null));
  await appendEvents(database.db, events);
  while ((await numberPending(database.db, 100)) > 0);
  return events.map((e) => e.event.eventId);
}

const pump = (maxBacklog: number) =>
  createDeliverWebhook({
    db: database.db,
    untriedDb: database.db,
    destinations: createDestinationPolicy('127.0.0.1'),
    logger: createLogger('silent'),
    attempts: 3,
    backoffMs: 100,
    maxBacklog,
  });

const newWebhook = () =>
  createWebhook(database.db, {
    url,
    events: ['DEVICE_REGISTERED'],
    expectedDisconnects: false,
    concurrency: 4,
  });

describe("a webhook's pump", () => {
  it('that ran dry takes what is numbered a moment later in the same run', async () => {
    received.length = 0;
    const webhook = await newWebhook();
    const deliver = pump(1000);
    await registered();
    expect(await deliver(webhook.id)).toEqual({ idle: true });
    expect(received).toHaveLength(1);

    // The receiver answered: the next run, dry at first, waits for the event numbered 100 ms in.
    const run = deliver(webhook.id);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await registered();
    expect(await run).toEqual({ idle: true });
    expect(received).toHaveLength(2);
    expect(new Set(received).size).toBe(2);
  });
});

describe("a webhook's backlog", () => {
  it('back after a long outage, the receiver gets the newest of its news', async () => {
    receivedEvents.length = 0;
    const webhook = await newWebhook();
    // While its receiver was away: 25 events it wants, among 30 it does not.
    const wanted: string[] = [];
    for (let i = 0; i < 5; i++) {
      wanted.push(...(await registered(5)));
      await registered(6, 'DEVICE_DELETED');
    }
    expect(await pendingDeliveries(database.db, webhook.id, 10)).toBe(10);

    expect(await pump(10)(webhook.id)).toEqual({ idle: true });
    expect([...receivedEvents].sort()).toEqual(wanted.slice(-10).sort());
    // What is passed over stays passed over; what comes next goes out.
    const next = await registered();
    expect(await pump(10)(webhook.id)).toEqual({ idle: true });
    expect(receivedEvents.slice(10)).toEqual(next);
    expect(await pendingDeliveries(database.db, webhook.id, 10)).toBe(0);
  });

  it('fanned out past its bound, the oldest deliveries are skipped', async () => {
    const db = database.db;
    const webhook = await newWebhook();
    const wanted = await registered(12);
    await fanOutTo(db, webhook, { events: 100, deliveries: 100, backlog: 5 });
    const rows = await db('webhook_deliveries')
      .where({ webhook_id: webhook.id })
      .select<{ event_id: string; status: string; last_error: string | null }[]>(
        'event_id',
        'status',
        'last_error',
      );
    const statusOf = new Map(rows.map((r) => [r.event_id, r.status]));
    expect(wanted.map((id) => statusOf.get(id))).toEqual([
      ...Array<string>(7).fill('SKIPPED'),
      ...Array<string>(5).fill('PENDING'),
    ]);
    expect(rows.find((r) => r.status === 'SKIPPED')?.last_error).toBe('backlog over 5: oldest skipped');
  });
});
