import Koa from 'koa';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetRoutes, operatorPageAuth } from '../../src/http/admin';
import { errorHandler } from '../../src/http/errors';
import { admin, ADMIN_TOKEN, createTestApp } from '../support/app';

// The operator pages (the fleet page, its JSON, the queue dashboard) must not be reachable without
// operator credentials however their paths are spelled: the routers match case-insensitively, and a
// guard comparing the path as written would let `/ADMIN/fleet.json` through.

let t: Awaited<ReturnType<typeof createTestApp>>;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

const PAGES = ['/admin', '/admin/fleet.json', '/admin/queues', '/admin/queues/api/queues'];

/** The same path spelled as a client might: other cases, repeated slashes, encoded letters and slashes. */
function spellings(path: string): string[] {
  const rest = path.slice('/admin'.length);
  return [
    path.toUpperCase(),
    `/Admin${rest}`,
    `/aDmIn${rest.toUpperCase()}`,
    `/${path}`,
    `/admin/${rest}`,
    `${path}/`,
    `/%61dmin${rest}`,
    `/%2561dmin${rest}`,
    `/admin${rest.replace(/\//g, '%2F')}`,
    `/admin${rest.replace(/\//g, '%2f')}`,
    `/ADMIN${rest.replace(/\//g, '%2F')}`,
  ];
}

describe('operator pages, however spelled', () => {
  it('are served with operator credentials', async () => {
    for (const path of PAGES) {
      const res = await request(t.callback)
        .get(path)
        .set('Authorization', `Basic ${Buffer.from(`op:${ADMIN_TOKEN}`).toString('base64')}`);
      expect(res.status, path).toBe(200);
    }
  });

  it('answer 401 without them, in every spelling', async () => {
    const tried = [...PAGES, ...PAGES.flatMap(spellings)];
    for (const path of tried) {
      const res = await request(t.callback).get(path);
      expect(res.status, path).toBe(401);
      expect((res.body as { error?: { code?: string } }).error?.code, path).toBe('UNAUTHORIZED');
    }
    // With them, no spelling fails on the server's side.
    for (const path of tried)
      expect((await request(t.callback).get(path).set(admin)).status, path).toBeLessThan(500);
  });

  it('every response, page, dashboard, API or error, forbids framing and sniffing', async () => {
    const basic = `Basic ${Buffer.from(`op:${ADMIN_TOKEN}`).toString('base64')}`;
    const cases: [string, Record<string, string>][] = [
      ['/admin', { Authorization: basic }],
      ['/admin/queues', { Authorization: basic }],
      ['/admin/queues', {}],
      ['/devices', admin],
      ['/devices', {}],
      ['/no-such-route', {}],
    ];
    for (const [path, headers] of cases) {
      const res = await request(t.callback).get(path).set(headers);
      const what = `${path} ${res.status}`;
      expect(res.headers['x-frame-options'], what).toBe('DENY');
      expect(res.headers['content-security-policy'], what).toContain("frame-ancestors 'none'");
      expect(res.headers['x-content-type-options'], what).toBe('nosniff');
      expect(res.headers['referrer-policy'], what).toBe('no-referrer');
      // Plain HTTP here: no HSTS, which only means something over TLS.
      expect(res.headers['strict-transport-security'], what).toBeUndefined();
    }
  });

  it('the fleet routes ask for credentials themselves, with no guard in front', async () => {
    const app = new Koa();
    app.use(errorHandler());
    const routes = fleetRoutes({
      db: t.db,
      pageAuth: operatorPageAuth(ADMIN_TOKEN),
      intervalSeconds: async () => 5,
      lastHeardAt: async () => new Map(),
      sharedBus: false,
    });
    app.use(routes.routes());
    for (const path of ['/admin', '/ADMIN', '/admin/fleet.json', '/Admin/Fleet.JSON']) {
      expect((await request(app.callback()).get(path)).status, path).toBe(401);
      expect((await request(app.callback()).get(path).set(admin)).status, path).toBe(200);
    }
  });
});
