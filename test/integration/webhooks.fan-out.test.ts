import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebhook, fanOut } from '../../src/db/webhooks';
import { createTestDatabase } from '../support/database';

// The fan-out reads the client stream once: two workers at once, or a run repeated after a crash
// that lost the cursor's move, write one delivery per webhook and event.

let database: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => database.drop());

describe('webhook fan-out', () => {
  it('writes each delivery once, whoever runs it and however often', async () => {
    const db = database.db;
    await createWebhook(db, {
      url: 'http://127.0.0.1:9/a',
      events: ['DEVICE_REGISTERED'],
      expectedDisconnects: false,
    });
    await createWebhook(db, {
      url: 'http://127.0.0.1:9/b',
      events: ['DEVICE_DELETED'],
      expectedDisconnects: false,
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
    const [a, b] = await Promise.all([fanOut(db, 2, 1000), fanOut(db, 2, 1000)]);
    const rest = await fanOut(db, 10, 1000);
    expect(a.created + b.created + rest.created).toBe(5);
    expect([...a.due, ...b.due, ...rest.due].length).toBeGreaterThan(0);
    // A repeat from the start (the cursor's move lost) adds nothing.
    await db('webhook_fanout').update({ last_seq: 0 });
    expect((await fanOut(db, 10, 1000)).created).toBe(0);
    expect(Number((await db('webhook_deliveries').count<{ n: string }[]>('* as n'))[0]!.n)).toBe(5);
  });
});
