import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents, numberPending } from '../../src/db/outbox';
import { createWebhook } from '../../src/db/webhooks';
import { createDestinationPolicy } from '../../src/domain/destinations';
import { clientEvent } from '../../src/domain/events';
import { createLogger } from '../../src/logger';
import { createDeliverWebhook } from '../../src/operations/deliver-webhook';
import { createTestDatabase } from '../support/database';

// One webhook's pump against real Postgres and a receiver over HTTP: a pump whose receiver answers
// and that ran dry waits a moment for news before it gives up its slot, so a storm's next events go
// out in the same run rather than after a new job.

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let receiver: Server;
let url: string;
const received: string[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received.push(String(req.headers['webhook-id']));
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

/** An event the webhook wants, written and numbered as a commit would be. */
async function registered(): Promise<void> {
  await appendEvents(database.db, [clientEvent('DEVICE_REGISTERED', null)]);
  while ((await numberPending(database.db, 100)) > 0);
}

describe("a webhook's pump", () => {
  it('that ran dry takes what is numbered a moment later in the same run', async () => {
    const db = database.db;
    const webhook = await createWebhook(db, {
      url,
      events: ['DEVICE_REGISTERED'],
      expectedDisconnects: false,
      concurrency: 4,
    });
    const deliver = createDeliverWebhook({
      db,
      untriedDb: db,
      destinations: createDestinationPolicy('127.0.0.1'),
      logger: createLogger('silent'),
      attempts: 3,
      backoffMs: 100,
      maxBacklog: 1000,
    });
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
