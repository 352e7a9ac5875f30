import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSystem, waitFor, type TestSystem } from '../support/system';

// Alerts by webhook against a real local HTTP receiver that fails at first: deliveries are retried
// with backoff and logged, each body signed with a timestamp; "offline for at least X" is sent only
// if the device is still away X seconds after its disconnect; a planned goodbye does not alert.

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/** A receiver that answers 500 to the first `failFirst` requests of each path, then 200. */
async function receiver(failFirst: number) {
  const received: Received[] = [];
  const seen = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      const path = req.url ?? '';
      const n = (seen.get(path) ?? 0) + 1;
      seen.set(path, n);
      const ok = n > failFirst;
      if (ok) received.push({ path, headers: req.headers, body, at: Date.now() });
      res.writeHead(ok ? 200 : 500).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, received, attempts: seen, close: () => new Promise((r) => server.close(r)) };
}

type Body = { type: string; deviceId: string; occurredAt: string; reason?: string };
const bodies = (r: Received[], path: string) =>
  r.filter((x) => x.path === path).map((x) => JSON.parse(x.body) as Body);

describe('webhooks', () => {
  let s: TestSystem;
  let hooks: Awaited<ReturnType<typeof receiver>>;
  beforeAll(async () => {
    hooks = await receiver(2);
    s = await startTestSystem({
      intervalSeconds: 1,
      maxMisses: 1,
      env: { WEBHOOK_BACKOFF_MS: '200', WEBHOOK_FANOUT_MS: '200' },
    });
  });
  afterAll(async () => {
    await s.close();
    await hooks.close();
  });

  const subscribe = async (body: Record<string, unknown>) => {
    const res = await request(s.callback).post('/webhooks').set(s.admin).send(body);
    expect(res.status).toBe(201);
    return res.body as { id: string; secret: string };
  };
  const deliveries = async (id: string) =>
    (
      (await request(s.callback).get(`/webhooks/${id}/deliveries`).set(s.admin)).body as {
        deliveries: {
          eventType: string;
          deviceId: string;
          status: string;
          attempts: number;
          lastStatusCode: number;
        }[];
      }
    ).deliveries;

  it('retries a failing receiver with backoff, signs each body, logs every delivery', async () => {
    const all = await subscribe({
      url: `${hooks.url}/all`,
      events: ['DEVICE_CONNECTED', 'DEVICE_DISCONNECTED'],
    });
    const d = await s.device();
    await waitFor(() => bodies(hooks.received, '/all').some((b) => b.deviceId === d.id), 10_000, 'delivered');
    const got = hooks.received.find((r) => r.path === '/all')!;
    expect(hooks.attempts.get('/all')).toBe(3);
    // The documented check: HMAC-SHA-256 of "<timestamp>.<body>" under the secret, and a fresh timestamp.
    const timestamp = Number(got.headers['x-rollcall-timestamp']);
    expect(Math.abs(Date.now() / 1000 - timestamp)).toBeLessThan(30);
    const expected = `sha256=${createHmac('sha256', all.secret).update(`${timestamp}.${got.body}`).digest('hex')}`;
    expect(got.headers['x-rollcall-signature']).toBe(expected);
    // The Standard Webhooks headers, checked by that project's own verifier.
    expect(all.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(got.headers['webhook-id']).toBe(got.headers['x-rollcall-delivery']);
    const headers = { 'webhook-id': '', 'webhook-timestamp': '', 'webhook-signature': '' };
    for (const h of Object.keys(headers) as (keyof typeof headers)[]) headers[h] = String(got.headers[h]);
    expect(new StandardWebhook(all.secret).verify(got.body, headers)).toEqual(JSON.parse(got.body));
    expect(() =>
      new StandardWebhook(all.secret).verify(
        got.body.replace('DEVICE_CONNECTED', 'DEVICE_DISCONNECTED'),
        headers,
      ),
    ).toThrow();
    expect(JSON.parse(got.body)).toMatchObject({ type: 'DEVICE_CONNECTED', deviceId: d.id });
    await waitFor(
      async () => (await deliveries(all.id)).some((x) => x.status === 'DELIVERED'),
      5000,
      'logged as delivered',
    );
    expect((await deliveries(all.id)).find((x) => x.deviceId === d.id)).toMatchObject({
      eventType: 'DEVICE_CONNECTED',
      status: 'DELIVERED',
      attempts: 3,
      lastStatusCode: 200,
    });
    // The list never shows the secret.
    const listed = await request(s.callback).get('/webhooks').set(s.admin);
    expect(JSON.stringify(listed.body)).not.toContain(all.secret);
  }, 30_000);

  it('"offline for 5 s": sent for a device still away, skipped for one that came back; a goodbye does not alert', async () => {
    const offline = await subscribe({
      url: `${hooks.url}/offline`,
      events: ['DEVICE_DISCONNECTED'],
      offlineForSeconds: 5,
    });
    const [away, back, leaving] = [await s.device(), await s.device(), await s.device()];
    for (const d of [away, back, leaving]) await s.waitStatus(d.id, 'CONNECTED');
    away.device.silent = true;
    back.device.silent = true;
    leaving.device.goodbye();
    await s.waitStatus(away.id, 'DISCONNECTED', 6000);
    await s.waitStatus(back.id, 'DISCONNECTED', 6000);
    back.device.silent = false;
    await s.waitStatus(back.id, 'CONNECTED', 4000);
    await waitFor(() => bodies(hooks.received, '/offline').length > 0, 15_000, 'offline alert');
    const alert = hooks.received.find((r) => r.path === '/offline')!;
    const sent = JSON.parse(alert.body) as Body;
    expect(sent).toMatchObject({
      type: 'DEVICE_DISCONNECTED',
      deviceId: away.id,
      reason: 'MISSED_HEARTBEATS',
    });
    expect(alert.at - Date.parse(sent.occurredAt)).toBeGreaterThanOrEqual(5000);
    await waitFor(
      async () => (await deliveries(offline.id)).find((x) => x.deviceId === back.id)?.status === 'SKIPPED',
      8000,
      'skipped for the device that came back',
    );
    await new Promise((r) => setTimeout(r, 1500));
    expect(bodies(hooks.received, '/offline').map((b) => b.deviceId)).toEqual([away.id]);
    // The planned disconnect made no delivery at all.
    expect((await deliveries(offline.id)).some((x) => x.deviceId === leaving.id)).toBe(false);
  }, 40_000);

  it("a group's webhook hears only its devices; bad subscriptions are refused", async () => {
    const alpha = await subscribe({
      url: `${hooks.url}/alpha`,
      events: ['DEVICE_CONNECTED'],
      group: 'alpha',
    });
    const [inside, outside] = [await s.device({}, { group: 'alpha' }), await s.device()];
    for (const d of [inside, outside]) await s.waitStatus(d.id, 'CONNECTED');
    await waitFor(() => bodies(hooks.received, '/alpha').length > 0, 10_000, 'group alert');
    await new Promise((r) => setTimeout(r, 1000));
    expect((await deliveries(alpha.id)).map((x) => x.deviceId)).toEqual([inside.id]);
    for (const bad of [
      { url: 'ftp://x', events: ['DEVICE_CONNECTED'] },
      { url: `${hooks.url}/x`, events: [] },
      { url: `${hooks.url}/x`, events: ['NOT_AN_EVENT'] },
      { url: 'http://user:pw@example.com', events: ['DEVICE_CONNECTED'] },
      { url: `${hooks.url}/x`, events: ['DEVICE_DISCONNECTED'], offlineForSeconds: 0 },
      { url: `${hooks.url}/x`, events: ['DEVICE_CONNECTED'], concurrency: 0 },
      { url: `${hooks.url}/x`, events: ['DEVICE_CONNECTED'], concurrency: 257 },
      { url: `${hooks.url}/x`, events: ['DEVICE_CONNECTED'], concurrency: 2.5 },
    ])
      expect(
        (await request(s.callback).post('/webhooks').set(s.admin).send(bad)).status,
        JSON.stringify(bad),
      ).toBe(400);
    expect((await request(s.callback).post('/webhooks').send({})).status).toBe(401);
    expect((await request(s.callback).delete(`/webhooks/${alpha.id}`).set(s.admin)).status).toBe(204);
    expect((await request(s.callback).get(`/webhooks/${alpha.id}`).set(s.admin)).status).toBe(404);
  }, 30_000);
});
