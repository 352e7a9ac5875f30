import { createQueries } from '../../src/operations/queries';
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Koa from 'koa';
import { createAuthenticator, createCredentialGuard } from '../../src/http/auth';
import { errorHandler } from '../../src/http/errors';
import { uptimeRoutes } from '../../src/http/routes/uptime';
import { createAttemptLimiter } from '../../src/redis/rate-limit';
import { admin, ADMIN_TOKEN, createTestApp, registration } from '../support/app';

// Uptime over HTTP from sessions written to Postgres at known times; every figure is hand-computed.

let t: Awaited<ReturnType<typeof createTestApp>>;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

const BASE = Date.parse('2026-06-01T00:00:00Z');
const at = (minutes: number) => new Date(BASE + minutes * 60_000);

async function deviceWith(sessions: [number, number | null, string | null][], group?: string) {
  const reg = await request(t.callback)
    .post('/devices')
    .send(registration(group === undefined ? {} : { group }));
  expect(reg.status).toBe(201);
  const id = (reg.body as { id: string }).id;
  // Registered long before the range.
  await t
    .db('devices')
    .where({ id })
    .update({ created_at: at(-1000) });
  for (const [start, end, reason] of sessions)
    await t.db('connection_sessions').insert({
      id: randomUUID(),
      device_id: id,
      started_at: at(start),
      started_round: 1,
      ended_at: end === null ? null : at(end),
      end_reason: reason,
    });
  return id;
}

const get = (path: string, query: Record<string, string>) =>
  request(t.callback).get(path).query(query).set(admin);

describe('GET /devices/:id/uptime and /fleet/uptime', () => {
  it('a device over a range its sessions cross, whole and by hour', async () => {
    // Range 60-180 min. Connected -30-90 (missed heartbeats), 100-150 (planned), 200-.
    const id = await deviceWith([
      [-30, 90, 'MISSED_HEARTBEATS'],
      [100, 150, 'PLANNED'],
      [200, null, null],
    ]);
    const res = await get(`/devices/${id}/uptime`, {
      from: at(60).toISOString(),
      to: at(180).toISOString(),
      bucket: 'hour',
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      deviceId: id,
      from: at(60).toISOString(),
      to: at(180).toISOString(),
      observedSeconds: 7200,
      connectedSeconds: 4800,
      connectedPercent: 66.67,
      outages: { MISSED_HEARTBEATS: { count: 1, seconds: 600 }, PLANNED: { count: 1, seconds: 1800 } },
      mtbfSeconds: 4800,
    });
    // 60-120: connected 60-90 and 100-120 (50 of 60 min); 120-180: 120-150 (30 of 60).
    const buckets = (res.body as { buckets: { from: string; connectedPercent: number }[] }).buckets;
    expect(buckets.map((b) => [b.from, b.connectedPercent])).toEqual([
      [at(60).toISOString(), 83.33],
      [at(120).toISOString(), 50],
    ]);
  });

  it('an outage that began before the range is counted with its reason', async () => {
    const id = await deviceWith([
      [0, 30, 'MISSED_HEARTBEATS'],
      [90, null, null],
    ]);
    const res = await get(`/devices/${id}/uptime`, { from: at(60).toISOString(), to: at(120).toISOString() });
    expect(res.body).toMatchObject({
      connectedSeconds: 1800,
      connectedPercent: 50,
      outages: { MISSED_HEARTBEATS: { count: 1, seconds: 1800 } },
    });
  });

  it('the fleet sums every device that existed in the range', async () => {
    const res = await get('/fleet/uptime', { from: at(60).toISOString(), to: at(120).toISOString() });
    expect(res.status).toBe(200);
    // The two devices above: 50 + 30 connected minutes of 120 observed (no other device has sessions,
    // and every device registered by createTestApp's tests is counted as observed and never connected).
    const body = res.body as { devices: number; observedSeconds: number; connectedSeconds: number };
    expect(body.devices).toBeGreaterThanOrEqual(2);
    expect(body.connectedSeconds).toBe((50 + 30) * 60);
    expect(body.observedSeconds).toBe(body.devices * 3600);
  });

  it('refuses bad ranges with a 400 and an unknown device with a 404; operator only', async () => {
    const bad: Record<string, string>[] = [
      { from: at(60).toISOString(), to: at(60).toISOString() },
      { from: 'yesterday' },
      { from: at(0).toISOString(), to: at(0 + 60 * 24 * 400).toISOString() },
      { from: at(0).toISOString(), to: at(60 * 24 * 60).toISOString(), bucket: 'hour' },
      { bucket: 'week' },
    ];
    for (const query of bad) {
      const res = await get('/fleet/uptime', query);
      expect(res.status, JSON.stringify(query)).toBe(400);
    }
    expect((await get(`/devices/${randomUUID()}/uptime`, {})).status).toBe(404);
    expect((await request(t.callback).get('/fleet/uptime')).status).toBe(401);
  });

  it('refuses a fleet request that would compute more reports than it allows', async () => {
    const app = new Koa();
    app.use(errorHandler());
    const guard = createCredentialGuard(
      createAttemptLimiter(t.redis, t.keys.rateLimits.badCredential, 10, 60),
      () => {},
    );
    const auth = createAuthenticator(ADMIN_TOKEN, async () => undefined, guard);
    app.use(
      uptimeRoutes({ auth, ops: { queries: createQueries(t.db, 10_000) }, maxReports: 2 * 24 }).routes(),
    );
    const ask = (days: number) =>
      request(app.callback())
        .get('/fleet/uptime')
        .query({ from: at(0).toISOString(), to: at(days * 24 * 60).toISOString(), bucket: 'hour' })
        .set(admin);
    // The two devices of this file: 2 x 24 hourly buckets is the limit, 2 x 48 beyond it.
    const day = await ask(1);
    expect(day.status).toBe(200);
    // Summed per hour over both: 0-60 min, 60 + 30 of 120 connected; 60-120 min, 50 + 30 of 120;
    // from 200 min on, both connected.
    const hours = (day.body as { buckets: { connectedPercent: number }[] }).buckets;
    expect(hours).toHaveLength(24);
    expect(hours.slice(0, 2).map((h) => h.connectedPercent)).toEqual([75, 66.67]);
    expect(hours.slice(4).every((h) => h.connectedPercent === 100)).toBe(true);
    const beyond = await ask(2);
    expect(beyond.status).toBe(400);
    expect((beyond.body as { error: { code: string } }).error.code).toBe('RANGE_TOO_LARGE');
  });

  it("a group's uptime sums its devices only", async () => {
    // Run last: the limit test above counts this file's first two devices. In the range 60-120: one device connected 60-90, the other 100-120; a third outside the group.
    await deviceWith([[0, 90, 'MISSED_HEARTBEATS']], 'uptime-g');
    await deviceWith([[100, null, null]], 'uptime-g');
    await deviceWith([[0, null, null]], 'uptime-other');
    const res = await get('/fleet/uptime', {
      from: at(60).toISOString(),
      to: at(120).toISOString(),
      group: 'uptime-g',
    });
    expect(res.body).toMatchObject({
      group: 'uptime-g',
      devices: 2,
      observedSeconds: 7200,
      connectedSeconds: (30 + 20) * 60,
      // The first one's outage from 90 on; the second had no session before 100 (never connected).
      outages: { MISSED_HEARTBEATS: { count: 1, seconds: 1800 } },
    });
    const id = await deviceWith([]);
    expect((await get(`/devices/${id}/uptime`, { group: 'uptime-g' })).status).toBe(400);
  });
});
