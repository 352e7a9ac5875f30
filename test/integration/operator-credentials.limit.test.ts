import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, ADMIN_TOKEN, createTestApp, registration } from '../support/app';

// Wrong operator credentials (admin token on the API, Basic password on the pages) are limited per
// address, behind a trusted proxy by the address the proxy saw, and counted by surface.

let t: Awaited<ReturnType<typeof createTestApp>>;
beforeAll(async () => {
  t = await createTestApp({ TRUST_PROXY: 'true' });
});
afterAll(async () => t.close());

const get = (path: string, forwardedFor: string, headers: Record<string, string> = {}) =>
  request(t.callback).get(path).set('X-Forwarded-For', forwardedFor).set(headers);
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
const basic = (password: string) => ({
  Authorization: `Basic ${Buffer.from(`op:${password}`).toString('base64')}`,
});

async function failures(surface: string): Promise<number> {
  const metric = await t.metrics.registry.getSingleMetric('rollcall_auth_failures_total')!.get();
  return metric.values.find((v) => v.labels.surface === surface)?.value ?? 0;
}

function expectBlocked(res: request.Response) {
  expect(res.status).toBe(429);
  expect(res.body).toMatchObject({ error: { code: 'TOO_MANY_ATTEMPTS' } });
  const retryAfter = Number(res.headers['retry-after']);
  expect(retryAfter).toBeGreaterThan(0);
  expect(retryAfter).toBeLessThanOrEqual(60);
}

describe('wrong operator credentials', () => {
  it('on the API: ten heard 401, then 429 for the rest of the window; the right token still works; each counted', async () => {
    const ip = '192.0.2.10';
    const before = await failures('api');
    for (let i = 0; i < 10; i++) expect((await get('/devices', ip, bearer(`wrong-${i}`))).status).toBe(401);
    expectBlocked(await get('/devices', ip, bearer('wrong-10')));
    // The operator behind the same address as the guesser is never locked out.
    expect((await get('/devices', ip, admin)).status).toBe(200);
    expectBlocked(await get('/devices', ip, bearer('wrong-11')));
    expect((await failures('api')) - before).toBe(12);
  });

  it("a device's valid token on an operator route is no guess: 403, not counted, the operator not locked out", async () => {
    const reg = await request(t.callback)
      .post('/devices')
      .set('X-Forwarded-For', '192.0.2.13')
      .send(registration({ name: 'robot-on-operator-route' }));
    const { token } = reg.body as { token: string };
    const ip = '192.0.2.12';
    const before = await failures('api');
    for (let i = 0; i < 15; i++) {
      const res = await get('/devices', ip, bearer(token));
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ error: { code: 'FORBIDDEN' } });
    }
    expect((await failures('api')) - before).toBe(0);
    expect((await get('/devices', ip, admin)).status).toBe(200);
    // Still counted as wrong: ten more wrong ones block wrong ones.
    for (let i = 0; i < 10; i++) expect((await get('/devices', ip, bearer(`wrong-${i}`))).status).toBe(401);
    expectBlocked(await get('/devices', ip, bearer('wrong-10')));
  });

  it('on the operator pages: limited the same, counted apart, and a visit without credentials is no guess', async () => {
    const ip = '192.0.2.20';
    const before = { pages: await failures('pages'), api: await failures('api') };
    for (let i = 0; i < 20; i++) expect((await get('/admin', ip)).status).toBe(401);
    for (let i = 0; i < 10; i++) {
      const res = await get('/admin/fleet.json', ip, basic(`wrong-${i}`));
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Basic/);
    }
    expectBlocked(await get('/admin', ip, basic('wrong-10')));
    expect((await get('/admin', ip, basic(ADMIN_TOKEN))).status).toBe(200);
    expect((await get('/admin/queues', ip, basic(ADMIN_TOKEN))).status).toBe(200);
    // One count per address for both surfaces: wrong tokens on the API are blocked as well.
    expectBlocked(await get('/devices', ip, bearer('wrong-on-the-api')));
    expect((await failures('pages')) - before.pages).toBe(11);
    expect((await failures('api')) - before.api).toBe(1);
  });

  it('checks no more than ten however many come at once', async () => {
    const ip = '192.0.2.30';
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) => get('/devices', ip, bearer(`wrong-${i}`))),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(290);
  });

  it('a device keeps its API on a blocked address', async () => {
    const reg = await request(t.callback)
      .post('/devices')
      .set('X-Forwarded-For', '192.0.2.41')
      .send(registration({ name: 'behind-the-nat' }));
    expect(reg.status).toBe(201);
    const { id, token } = reg.body as { id: string; token: string };
    const ip = '192.0.2.40';
    for (let i = 0; i < 11; i++) await get(`/devices/${id}`, ip, bearer(`stale-${i}`));
    expectBlocked(await get(`/devices/${id}`, ip, bearer('stale-11')));
    expect((await get(`/devices/${id}`, ip, bearer(token))).status).toBe(200);
    expect((await get(`/devices/${id}`, ip, admin)).status).toBe(200);
  });
});

describe('behind a trusted proxy', () => {
  it('counts the address the proxy saw, whatever the client wrote to the left of it', async () => {
    const seen = '203.0.113.50';
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++)
      statuses.push((await get('/devices', `10.${i}.0.1, ${seen}`, bearer(`wrong-${i}`))).status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(10);
    expect(statuses.slice(10).every((s) => s === 429)).toBe(true);
    // The registration secret the same.
    const secrets: number[] = [];
    for (let i = 0; i < 15; i++) {
      const res = await request(t.callback)
        .post('/devices')
        .set('X-Forwarded-For', `10.${i}.0.2, 203.0.113.60`)
        .send(registration({ secretKey: 'wrong' }));
      secrets.push(res.status);
    }
    expect(secrets.filter((s) => s === 401)).toHaveLength(10);
    expect(secrets.slice(10).every((s) => s === 429)).toBe(true);
  });

  it('a client naming another address does not lock that address out', async () => {
    const victim = '203.0.113.70';
    for (let i = 0; i < 15; i++) await get('/devices', `${victim}, 203.0.113.71`, bearer(`wrong-${i}`));
    expectBlocked(await get('/devices', `${victim}, 203.0.113.71`, bearer('wrong-15')));
    expect((await get('/devices', victim, bearer('wrong-at-the-victim'))).status).toBe(401);
  });

  it('a client that is not the trusted proxy is taken at its own address, whatever it forwards', async () => {
    // The proxy connects from 127.0.0.2; a client reaching the service directly, from 127.0.0.1.
    const app = await createTestApp({ TRUST_PROXY: 'true', TRUST_PROXY_ADDRESSES: '127.0.0.2' });
    const server = createServer(app.callback);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const send = (from: string, forwardedFor: string, token: string) =>
      new Promise<number>((resolve, reject) => {
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port,
            path: '/devices',
            localAddress: from,
            headers: {
              'x-forwarded-for': forwardedFor,
              ...bearer(token),
            },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode!);
          },
        );
        req.on('error', reject);
        req.end();
      });
    try {
      const operator = '192.0.2.50';
      const statuses: number[] = [];
      // Naming the operator's address, and a new address each time: counted at its own.
      for (let i = 0; i < 11; i++)
        statuses.push(await send('127.0.0.1', i % 2 ? operator : `198.51.100.${i}`, `wrong-${i}`));
      expect(statuses).toEqual([...Array<number>(10).fill(401), 429]);
      // The operator, through the proxy, is not locked out.
      expect(await send('127.0.0.2', operator, ADMIN_TOKEN)).toBe(200);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await app.close();
    }
  });

  it('with TRUST_PROXY_HOPS=2, counts the entry the outer proxy appended', async () => {
    const two = await createTestApp({ TRUST_PROXY: 'true', TRUST_PROXY_HOPS: '2' });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) {
        const res = await request(two.callback)
          .get('/devices')
          .set('X-Forwarded-For', `10.${i}.0.3, 198.51.100.7, 10.0.0.2`)
          .set(bearer(`wrong-${i}`));
        statuses.push(res.status);
      }
      expect(statuses).toEqual([...Array<number>(10).fill(401), 429, 429]);
      const inner = await request(two.callback)
        .get('/devices')
        .set('X-Forwarded-For', '198.51.100.8, 10.0.0.2')
        .set(admin);
      expect(inner.status).toBe(200);
    } finally {
      await two.close();
    }
  });
});
