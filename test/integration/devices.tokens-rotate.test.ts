import request from 'supertest';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { markHeardOnBus } from '../../src/db/devices';
import { connectDevice } from '../../src/db/transitions';
import { flapPolicy } from '../../src/domain/flapping';
import { SETTING_DEFAULTS } from '../../src/domain/settings';
import { tokenHash } from '../../src/domain/credentials';
import { createRedis } from '../../src/redis/connection';
import { admin, createTestApp, registration } from '../support/app';

let t: Awaited<ReturnType<typeof createTestApp>>;
beforeAll(async () => {
  t = await createTestApp({ TRUST_PROXY: 'true' });
});
afterAll(async () => t.close());

// The operator calls from one address; the robots, some still holding their old tokens, from
// another (old tokens presented count against their own address only).
const OPERATOR = { 'X-Forwarded-For': '192.0.2.100' };
const ROBOTS = '192.0.2.200';

async function register() {
  const res = await request(t.callback).post('/devices').set('X-Forwarded-For', ROBOTS).send(registration());
  expect(res.status).toBe(201);
  return res.body as { id: string; token: string; name: string };
}

describe('POST /devices/tokens/rotate', () => {
  const rotate = (body: unknown, headers: Record<string, string> = admin) =>
    request(t.callback)
      .post('/devices/tokens/rotate')
      .set({ ...OPERATOR, ...headers })
      .send(body as object);
  const status = async (id: string, token: string) =>
    (
      await request(t.callback)
        .get(`/devices/${id}`)
        .set({ Authorization: `Bearer ${token}`, 'X-Forwarded-For': ROBOTS })
    ).status;

  it('takes the devices of a filter: their old tokens stop working at once, on every gateway; the others keep theirs', async () => {
    const [shared, connected, idle] = [await register(), await register(), await register()];
    await markHeardOnBus(t.db, [shared.id], 'shared');
    expect(
      await connectDevice(t.db, connected.id, 1, {
        automaticRecording: false,
        flap: flapPolicy(SETTING_DEFAULTS),
      }),
    ).toBeTruthy();
    // What the gateways hear: every revocation, pushed through Redis.
    const listener = createRedis(inject('redisUrl'), 'worker');
    const revoked: { deviceId: string; tokenHash: string }[] = [];
    await listener.subscribe(t.keys.liveness.tokensRevoked);
    listener.on('message', (_channel: string, message: string) => {
      revoked.push(JSON.parse(message) as { deviceId: string; tokenHash: string });
    });
    try {
      const res = await rotate({ usesSharedBus: true });
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      const body = res.body as { count: number; rotated: { id: string; name: string; token: string }[] };
      expect(body.count).toBe(1);
      expect(body.rotated.map((d) => [d.id, d.name])).toEqual([[shared.id, shared.name]]);
      expect(await status(shared.id, shared.token)).toBe(401);
      expect(await status(shared.id, body.rotated[0]!.token)).toBe(200);
      expect(await status(connected.id, connected.token)).toBe(200);

      const byStatus = (await rotate({ status: 'CONNECTED' })).body as typeof body;
      expect(byStatus.rotated.map((d) => d.id)).toEqual([connected.id]);
      expect(await status(connected.id, connected.token)).toBe(401);
      expect(await status(idle.id, idle.token)).toBe(200);

      const byId = (await rotate({ ids: [idle.id, '00000000-0000-4000-8000-000000000000'] }))
        .body as typeof body;
      expect(byId.rotated.map((d) => d.id)).toEqual([idle.id]);
      expect(await status(idle.id, idle.token)).toBe(401);

      await expect.poll(() => revoked.map((r) => r.deviceId)).toEqual([shared.id, connected.id, idle.id]);
      expect(revoked.map((r) => r.tokenHash)).toEqual(
        [shared, connected, idle].map((d) => tokenHash(d.token)),
      );
      // And the heartbeat cache holds a tombstone for each, so no racing lookup brings one back.
      const { shardOf } = await import('../../src/domain/shards');
      for (const d of [shared, connected, idle])
        expect(
          await t.redis.hget(
            t.keys.liveness.shard(shardOf(d.id, t.config.SHARDS)).tokens,
            tokenHash(d.token),
          ),
        ).toBe('-');
      const events = await t.db('outbox').where({ type: 'DEVICE_TOKEN_ROTATED' }).pluck('device_id');
      expect(events.sort()).toEqual([shared.id, connected.id, idle.id].sort());
    } finally {
      await listener.quit();
    }
  });

  it('{"all": true} takes every live device, each with a new token of its own', async () => {
    const before = (await t.db('devices').whereNull('deleted_at').count<{ n: string }[]>({ n: '*' }))[0]!;
    const d = await register();
    const res = await rotate({ all: true });
    expect(res.status).toBe(200);
    const { rotated } = res.body as { rotated: { id: string; token: string }[] };
    expect(rotated).toHaveLength(Number(before.n) + 1);
    expect(new Set(rotated.map((r) => r.token)).size).toBe(rotated.length);
    expect(await status(d.id, d.token)).toBe(401);
    expect(await status(d.id, rotated.find((r) => r.id === d.id)!.token)).toBe(200);
  });

  it('never rotates on an empty or ambiguous body, and only for the operator', async () => {
    const d = await register();
    for (const body of [
      {},
      { all: false },
      { all: true, status: 'CONNECTED' },
      { ids: [] },
      { usesSharedBus: 'yes' },
    ]) {
      const res = await rotate(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((res.body as { error: { code: string } }).error.code).toBe('VALIDATION_FAILED');
    }
    expect((await rotate({ all: true }, { Authorization: `Bearer ${d.token}` })).status).toBe(403);
    expect(await status(d.id, d.token)).toBe(200);
  });
});
