import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tokenHash } from '../../src/domain/credentials';
import { admin, createTestApp, registration, SECRET } from '../support/app';

let t: Awaited<ReturnType<typeof createTestApp>>;
beforeAll(async () => {
  t = await createTestApp({ TRUST_PROXY: 'true' });
});
afterAll(async () => t.close());

const post = (body: unknown, ip = '10.0.0.1') =>
  request(t.callback)
    .post('/devices')
    .set('X-Forwarded-For', ip)
    .send(body as object);

describe('POST /devices', () => {
  it('registers a device and returns its token once, with Moth endpoints built without the token', async () => {
    const res = await post(registration({ name: 'amr-1' }));
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      name: 'amr-1',
      status: 'DISCONNECTED',
      actions: ['LINE_TRACKING'],
    });
    const { id, token, tracks, createdAt, channels } = res.body as {
      id: string;
      token: string;
      channels: { deviceManagement: string };
      tracks: { name: string; type: string; endpoint: string }[];
      createdAt: string;
    };
    expect(token).toMatch(/^[A-Za-z0-9_-]{43,}$/);
    expect(Number.isNaN(Date.parse(createdAt))).toBe(false);
    expect(tracks).toEqual([
      {
        name: 'front',
        type: 'VIDEO',
        endpoint: `/pang/ws/pub?channel=instant&name=${id}&source=base&track=front`,
      },
      {
        name: 'lidar',
        type: 'LIDAR',
        endpoint: `/pang/ws/pub?channel=instant&name=${id}&source=base&track=lidar`,
      },
    ]);
    expect(JSON.stringify(tracks)).not.toContain(token);
    // A bus of its own, named by a value unrelated to its id and token, and unlike any other's.
    const bus =
      /^\/pang\/ws\/meb\?channel=instant&name=device-management&source=base&track=([A-Za-z0-9_-]{22})$/.exec(
        channels.deviceManagement,
      )?.[1];
    expect(bus).toBeDefined();
    expect(channels.deviceManagement).not.toContain(id);
    expect(channels.deviceManagement).not.toContain(token.slice(0, 10));
    const other = (await post(registration({ name: 'amr-1b' }))).body as {
      channels: { deviceManagement: string };
    };
    expect(other.channels.deviceManagement).not.toBe(channels.deviceManagement);
    // The device's own view shows it again; its token authenticates as Bearer or as Device.
    for (const scheme of ['Bearer', 'Device']) {
      const mine = await request(t.callback).get(`/devices/${id}`).set('Authorization', `${scheme} ${token}`);
      expect(mine.status).toBe(200);
      expect(mine.body).toMatchObject({ channels, usesSharedBus: false });
    }
    const list = await request(t.callback).get('/devices').set(admin);
    expect(JSON.stringify(list.body)).not.toContain(bus);
  });

  it('stores only the sha256 of the token, and writes DEVICE_REGISTERED to the outbox', async () => {
    const res = await post(registration());
    const { id, token } = res.body as { id: string; token: string };
    const row = (await t.db('devices').where({ id }).first()) as Record<string, unknown>;
    expect(row.token_hash).toBe(tokenHash(token));
    expect(JSON.stringify(row)).not.toContain(token);
    const events = (await t.db('outbox').where({ device_id: id })) as {
      type: string;
      body: Record<string, unknown>;
    }[];
    expect(events.map((e) => e.type)).toEqual(['DEVICE_REGISTERED']);
    expect(events[0]!.body).toMatchObject({ type: 'DEVICE_REGISTERED', deviceId: id });
    expect(JSON.stringify(events)).not.toContain(token);
  });

  it('gives every device a different token', async () => {
    const a = await post(registration());
    const b = await post(registration());
    expect((a.body as { token: string }).token).not.toBe((b.body as { token: string }).token);
  });

  it.each([
    ['missing name', registration({ name: undefined }), 'name'],
    ['empty name', registration({ name: '' }), 'name'],
    ['name over 100 characters', registration({ name: 'x'.repeat(101) }), 'name'],
    // Names that would read as another device's on the fleet page.
    ['right-to-left override in the name', registration({ name: 'robot-\u202e10-tobor' }), 'name'],
    ['isolate in the name', registration({ name: 'robot-\u2066a\u2069' }), 'name'],
    ['zero-width space in the name', registration({ name: 'robot\u200b-1' }), 'name'],
    ['zero-width joiner in the name', registration({ name: 'robot\u200d-1' }), 'name'],
    ['byte order mark in the name', registration({ name: 'robot\ufeff-1' }), 'name'],
    ['line separator in the name', registration({ name: 'robot\u2028-1' }), 'name'],
    ['right-to-left mark in an action', registration({ actions: ['MOVE\u200f'] }), 'actions.0'],
    ['unknown track type', registration({ tracks: [{ name: 'a', type: 'THERMAL' }] }), 'tracks.0.type'],
    [
      'duplicate track names',
      registration({
        tracks: [
          { name: 'a', type: 'VIDEO' },
          { name: 'a', type: 'AUDIO' },
        ],
      }),
      'tracks.1.name',
    ],
    ['empty action', registration({ actions: ['MOVE', ''] }), 'actions.1'],
    ['action not a string', registration({ actions: [3] }), 'actions.0'],
    ['tracks not an array', registration({ tracks: 'VIDEO' }), 'tracks'],
    ['unknown field', registration({ admin: true }), ''],
    ['missing secret', registration({ secretKey: undefined }), 'secretKey'],
  ])('400 VALIDATION_FAILED on %s, naming the field', async (_case, body, field) => {
    const res = await post(body);
    expect(res.status).toBe(400);
    const error = (res.body as { error: { code: string; details: { issues: { field: string }[] } } }).error;
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.details.issues.map((i) => i.field)).toContain(field);
  });

  it('accepts names in any script, and emoji', async () => {
    for (const name of ['ロボット-3', 'Schweißroboter Nord', 'روبوت ٧', 'rover 🚜'])
      expect((await post(registration({ name }))).status, name).toBe(201);
  });

  it('400 MALFORMED_JSON when the body does not parse', async () => {
    const res = await request(t.callback)
      .post('/devices')
      .set('Content-Type', 'application/json')
      .send('{"name":');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: { code: 'MALFORMED_JSON' } });
  });

  it('401 INVALID_SECRET_KEY on a wrong secret, and stores nothing', async () => {
    const res = await post(registration({ name: 'intruder', secretKey: `${SECRET}x` }), '10.9.9.9');
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ error: { code: 'INVALID_SECRET_KEY' } });
    expect(await t.db('devices').where({ name: 'intruder' })).toHaveLength(0);
  });

  it('409 DEVICE_NAME_TAKEN on a duplicate name', async () => {
    expect((await post(registration({ name: 'twin' }))).status).toBe(201);
    const res = await post(registration({ name: 'twin' }));
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ error: { code: 'DEVICE_NAME_TAKEN' } });
  });

  it('413 over 64 KiB', async () => {
    const res = await post(registration({ pad: 'x'.repeat(70_000) }));
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
  });

  it('415 when the body is not JSON', async () => {
    const res = await request(t.callback).post('/devices').set('Content-Type', 'text/plain').send('name=x');
    expect(res.status).toBe(415);
    expect(res.body).toMatchObject({ error: { code: 'UNSUPPORTED_MEDIA_TYPE' } });
    const none = await request(t.callback).post('/devices');
    expect(none.status).toBe(415);
  });

  it('429 TOO_MANY_ATTEMPTS with Retry-After after 10 bad secrets in a minute, across replicas', async () => {
    const other = await createTestApp({ TRUST_PROXY: 'true', QUEUE_PREFIX: t.config.QUEUE_PREFIX });
    try {
      const ip = '192.0.2.77';
      for (let i = 0; i < 10; i++) {
        // Alternate between two app instances sharing Redis, as two web replicas would.
        const app = i % 2 === 0 ? t.callback : other.callback;
        const res = await request(app)
          .post('/devices')
          .set('X-Forwarded-For', ip)
          .send(registration({ secretKey: 'wrong' }));
        expect(res.status).toBe(401);
      }
      const blocked = await post(registration({ secretKey: SECRET }), ip);
      expect(blocked.status).toBe(429);
      expect(blocked.body).toMatchObject({ error: { code: 'TOO_MANY_ATTEMPTS' } });
      const retryAfter = Number(blocked.headers['retry-after']);
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(60);
      // Another address is not affected.
      expect((await post(registration(), '192.0.2.78')).status).toBe(201);
    } finally {
      await other.close();
    }
  });

  it('checks no more than 10 secrets a minute from one address, however many come at once', async () => {
    const ip = '192.0.2.91';
    const results = await Promise.all(
      Array.from({ length: 300 }, () => post(registration({ secretKey: 'wrong' }), ip)),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 401)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(290);
    expect((await post(registration(), ip)).status).toBe(429);
  });

  it('a good secret is not counted against its address, however many register at once', async () => {
    const ip = '192.0.2.92';
    // A fleet behind one NAT registering together.
    const together = await Promise.all(Array.from({ length: 30 }, () => post(registration(), ip)));
    expect(together.map((r) => r.status)).toEqual(Array.from({ length: 30 }, () => 201));
    expect((await post(registration({ secretKey: 'wrong' }), ip)).status).toBe(401);
  });

  it('never writes the token or the secret to the log', async () => {
    const res = await post(registration());
    const { token } = res.body as { token: string };
    await request(t.callback)
      .get('/devices')
      .set({ Authorization: `Bearer ${token}` });
    await request(t.callback).get('/devices').set(admin);
    expect(t.logs.text).toContain('"path":"/devices"');
    expect(t.logs.text).not.toContain(token);
    expect(t.logs.text).not.toContain(SECRET);
    expect(t.logs.text).not.toContain(admin.Authorization.slice(7));
  });
});
