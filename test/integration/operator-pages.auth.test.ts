import Koa from 'koa';
import { createHash } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetRoutes, operatorPageAuth } from '../../src/http/admin';
import { createCredentialGuard } from '../../src/http/auth';
import { errorHandler } from '../../src/http/errors';
import { createAttemptLimiter } from '../../src/redis/rate-limit';
import { createQueries } from '../../src/operations/queries';
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

  it('each page runs only its own code: the fleet page its inline script by hash and the files we serve, the dashboard its files', async () => {
    const basic = { Authorization: `Basic ${Buffer.from(`op:${ADMIN_TOKEN}`).toString('base64')}` };
    const directives = (res: request.Response) =>
      new Map(
        String(res.headers['content-security-policy'])
          .split(';')
          .map((d) => d.trim().split(/\s+/))
          .map(([name, ...values]) => [name!, values]),
      );
    const fleet = await request(t.callback).get('/admin').set(basic);
    const policy = directives(fleet);
    expect(policy.get('default-src')).toEqual(["'none'"]);
    const scripts = [...fleet.text.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
    expect(scripts).toHaveLength(1);
    const sha = (body: string) => `'sha256-${createHash('sha256').update(body).digest('base64')}'`;
    // Its own origin for the charting library it serves (/admin/assets/), never another origin.
    expect(policy.get('script-src')).toEqual(["'self'", ...scripts.map(sha)]);
    const styles = [...fleet.text.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1]!);
    expect(policy.get('style-src')).toEqual(["'self'", ...styles.map(sha)]);
    for (const tag of fleet.text.match(/<script[^>]*>/g) ?? [])
      expect(tag).toMatch(/^<script>$|^<script src="\/admin\/assets\/(uplot|rollcall-client)\.js">$/);
    // A style attribute would be refused by that policy: the page has none.
    expect(fleet.text).not.toMatch(/\sstyle=/);

    const dashboard = await request(t.callback).get('/admin/queues').set(basic);
    expect(directives(dashboard).get('script-src')).toEqual(["'self'"]);
    // Every script it runs is a file of its own; the inline one is JSON, which no browser runs.
    for (const tag of dashboard.text.match(/<script[^>]*>/g) ?? [])
      expect(tag).toMatch(/\ssrc="static\/|type="application\/json"/);

    const api = await request(t.callback).get('/devices').set(admin);
    expect(directives(api).get('default-src')).toEqual(["'none'"]);
  });

  it('the fleet routes ask for credentials themselves, with no guard in front', async () => {
    const app = new Koa();
    app.use(errorHandler());
    const routes = fleetRoutes({
      queries: createQueries(t.db, 10_000),
      pageAuth: operatorPageAuth(
        ADMIN_TOKEN,
        createCredentialGuard(
          createAttemptLimiter(t.redis, t.keys.rateLimits.badCredential, 10, 60),
          () => {},
        ),
      ),
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

  it('a change on the dashboard is taken only from our own pages, never from a cross-site form', async () => {
    const basic = { Authorization: `Basic ${Buffer.from(`op:${ADMIN_TOKEN}`).toString('base64')}` };
    const host = { Host: 'rollcall.test' };
    const jobs = async () => {
      const res = await request(t.callback).get('/admin/queues/api/queues').set(basic);
      const queues = (res.body as { queues: { name: string; counts: Record<string, number> }[] }).queues;
      return { name: queues[0]!.name, total: queues.reduce((n, q) => n + (q.counts.waiting ?? 0), 0) };
    };
    const { name, total } = await jobs();
    const add = (headers: Record<string, string>) =>
      request(t.callback)
        .post(`/admin/queues/api/queues/${encodeURIComponent(name)}/add`)
        .set({ ...basic, ...host, ...headers })
        .send({ name: 'probe', data: {}, options: {} });
    const refused: Record<string, string>[] = [
      {},
      { Origin: 'https://evil.example' },
      { Origin: 'http://rollcall.test.evil.example' },
      { 'Sec-Fetch-Site': 'cross-site', Origin: 'https://evil.example' },
      { 'Sec-Fetch-Site': 'same-site' },
      // A browser that says cross-site is believed over an Origin copied from ours.
      { 'Sec-Fetch-Site': 'cross-site', Origin: 'http://rollcall.test' },
    ];
    for (const headers of refused) {
      const res = await add(headers);
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect((res.body as { error: { code: string } }).error.code).toBe('CROSS_SITE_REQUEST');
    }
    expect((await jobs()).total).toBe(total);
    const accepted: Record<string, string>[] = [
      { 'Sec-Fetch-Site': 'same-origin', Origin: 'http://rollcall.test' },
      { Origin: 'http://rollcall.test' },
      { 'X-Rollcall-Operator': '1' },
    ];
    for (const headers of accepted) expect((await add(headers)).status, JSON.stringify(headers)).toBe(200);
    expect((await jobs()).total).toBe(total + accepted.length);
    // Reads need no such proof.
    expect((await request(t.callback).get('/admin/queues/api/queues').set(basic)).status).toBe(200);
  });
});
