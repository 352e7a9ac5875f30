import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, createTestApp, registration } from '../support/app';

let t: Awaited<ReturnType<typeof createTestApp>>;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

const patch = (body: object) => request(t.callback).patch('/server-settings').set(admin).send(body);

describe('caps on what callers may create', () => {
  it('devices: past device.maxDevices a registration is 409 DEVICE_LIMIT_REACHED; one deleted makes room', async () => {
    const [row] = await t.db('devices').whereNull('deleted_at').count<{ n: string }[]>({ n: '*' });
    const cap = Number(row!.n) + 2;
    expect((await patch({ device: { maxDevices: cap } })).status).toBe(200);
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await request(t.callback)
        .post('/devices')
        .send(registration({ name: `capped-${i}` }));
      expect(res.status).toBe(201);
      ids.push((res.body as { id: string }).id);
    }
    const refused = await request(t.callback)
      .post('/devices')
      .send(registration({ name: 'capped-2' }));
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({
      error: { code: 'DEVICE_LIMIT_REACHED', details: { limit: cap } },
    });
    expect((await request(t.callback).delete(`/devices/${ids[0]}`).set(admin)).status).toBe(204);
    expect(
      (
        await request(t.callback)
          .post('/devices')
          .send(registration({ name: 'capped-2' }))
      ).status,
    ).toBe(201);
    expect((await patch({ device: { maxDevices: null } })).status).toBe(200);
  });

  it('webhooks: past webhook.maxWebhooks a creation is 409 WEBHOOK_LIMIT_REACHED', async () => {
    expect((await patch({ webhook: { maxWebhooks: 2 } })).status).toBe(200);
    const settings = (await request(t.callback).get('/server-settings').set(admin)).body as {
      webhook: { maxWebhooks: number };
    };
    expect(settings.webhook.maxWebhooks).toBe(2);
    const create = () =>
      request(t.callback)
        .post('/webhooks')
        .set(admin)
        .send({ url: 'http://127.0.0.1:9/hook', events: ['DEVICE_CONNECTED'] });
    expect((await create()).status).toBe(201);
    expect((await create()).status).toBe(201);
    const refused = await create();
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ error: { code: 'WEBHOOK_LIMIT_REACHED' } });
    expect((await patch({ webhook: { maxWebhooks: 0 } })).status).toBe(400);
  });
});
