import request from 'supertest';
import { connectDevice } from '../../src/db/transitions';
import { flapPolicy } from '../../src/domain/flapping';
import { SETTING_DEFAULTS } from '../../src/domain/settings';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, createTestApp, registration } from '../support/app';

let t: Awaited<ReturnType<typeof createTestApp>>;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

async function register(name?: string) {
  const res = await request(t.callback)
    .post('/devices')
    .send(registration(name ? { name } : {}));
  expect(res.status).toBe(201);
  return res.body as { id: string; token: string; name: string };
}

describe('operator authentication', () => {
  it.each([
    ['get', '/devices'],
    ['get', '/devices/00000000-0000-4000-8000-000000000000'],
    ['delete', '/devices/00000000-0000-4000-8000-000000000000'],
    ['post', '/devices/00000000-0000-4000-8000-000000000000/token'],
    ['get', '/server-settings'],
    ['patch', '/server-settings'],
  ] as const)('%s %s: 401 without a token and with a wrong one', async (method, path) => {
    const none = await request(t.callback)[method](path);
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
    const wrong = await request(t.callback)
      [method](path)
      .set({ Authorization: 'Bearer not-the-admin-token' });
    expect(wrong.status).toBe(401);
  });

  it('a device token is not an operator token (403: a right credential for other routes, no guess)', async () => {
    const d = await register();
    const res = await request(t.callback)
      .get('/devices')
      .set({ Authorization: `Bearer ${d.token}` });
    expect(res.status).toBe(403);
  });
});

describe('GET /devices', () => {
  it('pages through every device once with a cursor, never showing a token', async () => {
    const created = [];
    for (let i = 0; i < 5; i++) created.push(await register(`page-${i}`));
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await request(t.callback)
        .get('/devices')
        .query(cursor ? { limit: 2, cursor } : { limit: 2 })
        .set(admin);
      expect(res.status).toBe(200);
      const body = res.body as { devices: { id: string; name: string }[]; nextCursor: string | null };
      expect(body.devices.length).toBeLessThanOrEqual(2);
      seen.push(...body.devices.map((d) => d.id));
      for (const c of created) expect(JSON.stringify(body)).not.toContain(c.token);
      cursor = body.nextCursor;
      pages++;
    } while (cursor && pages < 50);
    expect(new Set(seen).size).toBe(seen.length);
    for (const c of created) expect(seen).toContain(c.id);
  });

  it('filters by status', async () => {
    const [up, down] = [await register(), await register()];
    // One of them connected, as its first heartbeat would make it.
    expect(
      await connectDevice(t.db, up.id, 1, { automaticRecording: false, flap: flapPolicy(SETTING_DEFAULTS) }),
    ).toBeTruthy();
    const ids = async (status: string) =>
      (
        (await request(t.callback).get('/devices').query({ status, limit: 500 }).set(admin)).body as {
          devices: { id: string; status: string }[];
        }
      ).devices;
    const connected = await ids('CONNECTED');
    expect(connected.map((d) => d.id)).toEqual([up.id]);
    const disconnected = await ids('DISCONNECTED');
    expect(disconnected.map((d) => d.id)).toContain(down.id);
    expect(disconnected.map((d) => d.id)).not.toContain(up.id);
    expect(new Set(disconnected.map((d) => d.status))).toEqual(new Set(['DISCONNECTED']));
  });

  it.each([
    [{ status: 'ALIVE' }, 'status'],
    [{ limit: 0 }, 'limit'],
    [{ limit: 501 }, 'limit'],
    [{ cursor: '!!' }, 'cursor'],
    [{ cursor: 'bm90LWEtbnVtYmVy' }, 'cursor'],
    [{ color: 'red' }, ''],
  ])('400 on bad query %j', async (query, field) => {
    const res = await request(t.callback).get('/devices').query(query).set(admin);
    expect(res.status).toBe(400);
    const issues = (res.body as { error: { details: { issues: { field: string }[] } } }).error.details.issues;
    expect(issues.map((i) => i.field)).toContain(field);
  });
});

describe('GET /devices/:id', () => {
  it('is readable by the operator and by the device itself, not by another device', async () => {
    const a = await register();
    const b = await register();
    const byAdmin = await request(t.callback).get(`/devices/${a.id}`).set(admin);
    expect(byAdmin.status).toBe(200);
    expect(byAdmin.body).toMatchObject({
      id: a.id,
      name: a.name,
      status: 'DISCONNECTED',
      lastHeartbeatAt: null,
    });
    expect(JSON.stringify(byAdmin.body)).not.toContain(a.token);
    const bySelf = await request(t.callback)
      .get(`/devices/${a.id}`)
      .set({ Authorization: `Bearer ${a.token}` });
    expect(bySelf.status).toBe(200);
    const byOther = await request(t.callback)
      .get(`/devices/${a.id}`)
      .set({ Authorization: `Bearer ${b.token}` });
    expect(byOther.status).toBe(403);
  });

  it('404 DEVICE_NOT_FOUND for an unknown id or a malformed one', async () => {
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid', '1']) {
      const res = await request(t.callback).get(`/devices/${id}`).set(admin);
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ error: { code: 'DEVICE_NOT_FOUND' } });
    }
  });
});

describe('DELETE /devices/:id', () => {
  it('deletes (204), then 404; the token stops working, the name is free again, DEVICE_DELETED is written', async () => {
    const d = await register('to-delete');
    const del = await request(t.callback).delete(`/devices/${d.id}`).set(admin);
    expect(del.status).toBe(204);
    expect((await request(t.callback).get(`/devices/${d.id}`).set(admin)).status).toBe(404);
    expect((await request(t.callback).delete(`/devices/${d.id}`).set(admin)).status).toBe(404);
    expect(
      (
        await request(t.callback)
          .get(`/devices/${d.id}`)
          .set({ Authorization: `Bearer ${d.token}` })
      ).status,
    ).toBe(401);
    const again = await request(t.callback)
      .post('/devices')
      .send(registration({ name: 'to-delete' }));
    expect(again.status).toBe(201);
    const types = (await t.db('outbox').where({ device_id: d.id }).orderBy('id').pluck('type')) as string[];
    expect(types).toEqual(['DEVICE_REGISTERED', 'DEVICE_DELETED']);
  });
});

describe('POST /devices/:id/token', () => {
  it('rotates: the new token works and the old one stops working at once', async () => {
    const d = await register();
    const res = await request(t.callback).post(`/devices/${d.id}/token`).set(admin);
    expect(res.status).toBe(200);
    const { token } = res.body as { token: string };
    expect(token).toMatch(/^[A-Za-z0-9_-]{43,}$/);
    expect(token).not.toBe(d.token);
    expect(
      (
        await request(t.callback)
          .get(`/devices/${d.id}`)
          .set({ Authorization: `Bearer ${token}` })
      ).status,
    ).toBe(200);
    expect(
      (
        await request(t.callback)
          .get(`/devices/${d.id}`)
          .set({ Authorization: `Bearer ${d.token}` })
      ).status,
    ).toBe(401);
  });

  it('drops the old token from the heartbeat cache', async () => {
    const d = await register();
    const { tokenHash } = await import('../../src/domain/credentials');
    await t.liveness.cacheTokens([{ tokenHash: tokenHash(d.token), deviceId: d.id }]);
    await request(t.callback).post(`/devices/${d.id}/token`).set(admin);
    const { shardOf } = await import('../../src/domain/shards');
    const shard = t.keys.liveness.shard(shardOf(d.id, t.config.SHARDS));
    expect(await t.redis.hget(shard.tokens, tokenHash(d.token))).toBe('-');
    // a lookup that raced with the rotation cannot re-cache the old token
    await t.liveness.cacheTokens([{ tokenHash: tokenHash(d.token), deviceId: d.id }]);
    const heartbeat = { tokenHash: tokenHash(d.token), deviceId: d.id, heardRound: 1 };
    expect(await t.liveness.recordHeartbeats([heartbeat])).toMatchObject({
      heard: 0,
      revoked: 1,
    });
  });

  it('404 for an unknown device', async () => {
    const res = await request(t.callback)
      .post('/devices/00000000-0000-4000-8000-000000000000/token')
      .set(admin);
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ error: { code: 'DEVICE_NOT_FOUND' } });
  });
});

describe('unknown routes and methods', () => {
  it('answers JSON errors', async () => {
    const missing = await request(t.callback).get('/nope');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ error: { code: 'ROUTE_NOT_FOUND' } });
    const method = await request(t.callback).put('/devices');
    expect(method.status).toBe(405);
    expect(method.body).toMatchObject({ error: { code: 'METHOD_NOT_ALLOWED' } });
  });
});
