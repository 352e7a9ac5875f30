import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebhook, fanOutTo, webhooksWithWork } from '../../src/db/webhooks';
import { createTestDatabase } from '../support/database';

// The fan-out reads the client stream once per webhook: two workers at once, or a run repeated after
// a crash that lost a cursor's move, write one delivery per webhook and event; a webhook starts from
// the events numbered after it exists.

let database: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => database.drop());

describe('webhook fan-out', () => {
  it('writes each delivery once, whoever runs it and however often', async () => {
    const db = database.db;
    const a = await createWebhook(db, {
      url: 'http://127.0.0.1:9/a',
      events: ['DEVICE_REGISTERED'],
      expectedDisconnects: false,
      concurrency: 16,
    });
    const b = await createWebhook(db, {
      url: 'http://127.0.0.1:9/b',
      events: ['DEVICE_DELETED'],
      expectedDisconnects: false,
      concurrency: 16,
    });
    const event = (seq: number, type: string) => {
      const eventId = randomUUID();
      return {
        event_id: eventId,
        channel: 'client',
        type,
        body: JSON.stringify({ type, eventId, occurredAt: new Date().toISOString(), deviceId: null }),
        stream: 'client',
        seq,
        published_at: new Date(),
      };
    };
    await db('outbox').insert(
      [1, 2, 3, 4, 5].map((n) => event(n, n === 5 ? 'DEVICE_DELETED' : 'DEVICE_REGISTERED')),
    );
    await db('event_streams').insert({ stream: 'client', last_seq: 5 });
    // Both have work: events past their cursors.
    const ids = await webhooksWithWork(db, 100);
    expect(ids.sort()).toEqual([a.id, b.id].sort());
    // Two workers at once, in passes of two events.
    const run = async () => {
      let created = 0;
      for (const webhook of [a, b])
        for (let more = true; more;) {
          const r = await fanOutTo(db, webhook, { events: 2, deliveries: 1000, backlog: 1000 });
          created += r.created;
          more = r.more;
        }
      return created;
    };
    const [one, two] = await Promise.all([run(), run()]);
    expect(one + two).toBe(5);
    // A repeat from the start (the cursors' moves lost) adds nothing.
    await db('webhooks').update({ fanout_seq: 0 });
    expect(await run()).toBe(0);
    const count = async () => Number((await db('webhook_deliveries').count<{ n: string }[]>('* as n'))[0]!.n);
    expect(await count()).toBe(5);
    // Fanned out, and nothing due yet (the deliveries are due: their pumps are what is asked for).
    expect((await webhooksWithWork(db, 100)).sort()).toEqual([a.id, b.id].sort());
    await db('webhook_deliveries').update({ status: 'DELIVERED' });
    expect(await webhooksWithWork(db, 100)).toEqual([]);
    // A webhook created now hears only what comes next.
    const late = await createWebhook(db, {
      url: 'http://127.0.0.1:9/c',
      events: ['DEVICE_REGISTERED'],
      expectedDisconnects: false,
      concurrency: 16,
    });
    expect((await fanOutTo(db, late, { events: 10, deliveries: 1000, backlog: 1000 })).created).toBe(0);
  });
});
