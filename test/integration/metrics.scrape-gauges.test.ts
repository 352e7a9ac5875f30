import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents, numberPending } from '../../src/db/outbox';
import { createWebhook } from '../../src/db/webhooks';
import { clientEvent } from '../../src/domain/events';
import { createMetrics } from '../../src/metrics';
import { addServiceGauges } from '../../workers/roles/services';
import { SECRETS_KEY } from '../support/app';
import { useSecretsKey } from '../../src/db/sealing';
import { createTestDatabase } from '../support/database';

// What the shipped alert rules watch besides the counters: how far behind the events are, and
// which webhooks' circuits are open, read from Postgres at each scrape.

let database: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  useSecretsKey(SECRETS_KEY);
  database = await createTestDatabase();
});
afterAll(async () => database.drop());

async function scrape() {
  const metrics = createMetrics('test', false);
  addServiceGauges(metrics, { db: database.db, queues: { all: () => [] } as never });
  const values = async (name: string): Promise<Record<string, number>> =>
    Object.fromEntries(
      (await metrics.registry.getSingleMetric(name)!.get()).values.map((v) => [
        String(Object.values(v.labels)[0]),
        v.value,
      ]),
    );
  return { lag: await values('rollcall_event_lag_seconds'), circuits: await values('rollcall_webhooks') };
}

describe('the gauges read at scrape time', () => {
  it('the age of the oldest event not numbered, and of the oldest client event not on Moth', async () => {
    expect((await scrape()).lag).toEqual({ numbering: 0, moth: 0 });
    await appendEvents(database.db, [clientEvent('DEVICE_REGISTERED', null)]);
    await database.db('outbox').update({ created_at: database.db.raw(`now() - interval '40 seconds'`) });
    expect((await scrape()).lag.numbering).toBeGreaterThanOrEqual(40);

    await numberPending(database.db, 10);
    await database.db('outbox').update({ numbered_at: database.db.raw(`now() - interval '90 seconds'`) });
    const numbered = (await scrape()).lag;
    expect(numbered.numbering).toBe(0);
    expect(numbered.moth).toBeGreaterThanOrEqual(90);

    await database.db('outbox').update({ published_at: database.db.fn.now() });
    expect((await scrape()).lag).toEqual({ numbering: 0, moth: 0 });
  });

  it('webhooks by circuit: closed, open, half-open', async () => {
    const spec = {
      url: 'https://hooks.example/a',
      events: ['DEVICE_CONNECTED' as const],
      expectedDisconnects: false,
      concurrency: 16,
    };
    const [closed, open, halfOpen] = [
      await createWebhook(database.db, spec),
      await createWebhook(database.db, spec),
      await createWebhook(database.db, spec),
    ];
    await database
      .db('webhooks')
      .where({ id: open.id })
      .update({
        consecutive_failures: 6,
        circuit_open_until: database.db.raw(`now() + interval '1 minute'`),
      });
    await database
      .db('webhooks')
      .where({ id: halfOpen.id })
      .update({
        consecutive_failures: 5,
        circuit_open_until: database.db.raw(`now() - interval '1 second'`),
      });
    expect(closed.id).toBeDefined();
    expect((await scrape()).circuits).toEqual({ closed: 1, open: 1, 'half-open': 1 });
  });
});
