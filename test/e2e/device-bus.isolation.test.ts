import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedDevice } from '../../src/dev/simulated-device';
import { gatewayMetric, startTestSystem, waitFor, type TestSystem } from '../support/system';

const heartbeat = (token: string) => Buffer.from(JSON.stringify({ type: 'HEARTBEAT', token }));
const counter = (s: TestSystem, result: string) => gatewayMetric(s, 'rollcall_heartbeats_total', { result });
const createTask = (s: TestSystem, deviceId: string) =>
  request(s.callback)
    .post(`/devices/${deviceId}/tasks`)
    .set(s.admin)
    .send({ action: 'LINE_TRACKING', payload: { lap: 1 } });
const tasksSeen = (d: SimulatedDevice) => d.received.filter((m) => m.type === 'TASK_REGISTERED');

describe('one bus per device', () => {
  let s: TestSystem;
  beforeAll(async () => {
    s = await startTestSystem({ intervalSeconds: 1, maxMisses: 2 });
  });
  afterAll(async () => s.close());

  it("a token heard on another device's bus is refused and counted; a robot hears nothing of another", async () => {
    const a = await s.device();
    const c = await s.device();
    const b = await s.register();
    await s.waitStatus(a.id, 'CONNECTED');
    const before = await counter(s, 'misplaced');
    // a replays b's token on its own bus, round after round.
    for (let i = 0; i < 3; i++) {
      a.device.sendRaw(heartbeat(b.token));
      await new Promise((r) => setTimeout(r, 1000));
    }
    await waitFor(async () => (await counter(s, 'misplaced')) - before >= 3, 5000, 'misplaced counted');
    expect(await s.status(b.id)).toBe('DISCONNECTED');

    expect((await createTask(s, c.id)).status).toBe(201);
    await waitFor(() => tasksSeen(c.device).length === 1, 5000, "c's task on c's bus");
    await new Promise((r) => setTimeout(r, 500));
    expect(tasksSeen(a.device)).toEqual([]);
    // Nothing a heard carried another device's id or token.
    const text = JSON.stringify(a.device.received);
    for (const other of [b, c.reg]) {
      expect(text).not.toContain(other.id);
      expect(text).not.toContain(other.token);
    }
  });

  it('a robot still on the shared bus is heard during the migration window, shown as such, and its tasks reach it there', async () => {
    const reg = await s.register();
    const legacy = new SimulatedDevice({
      mothUrl: s.config.MOTH_URL,
      channelPath: s.config.channels.sharedDeviceBus,
      token: reg.token,
      replyDelayMs: () => Math.random() * 10,
    });
    await legacy.connect();
    try {
      await s.waitStatus(reg.id, 'CONNECTED');
      const usesShared = async () =>
        (
          (await request(s.callback).get(`/devices/${reg.id}`).set(s.admin)).body as {
            usesSharedBus: boolean;
          }
        ).usesSharedBus;
      await waitFor(usesShared, 5000, 'shown on the shared bus');
      const fleet = (await request(s.callback).get('/admin/fleet.json').set(s.admin)).body as {
        devices: { id: string; usesSharedBus: boolean }[];
      };
      expect(fleet.devices.find((d) => d.id === reg.id)?.usesSharedBus).toBe(true);
      expect((await createTask(s, reg.id)).status).toBe(201);
      await waitFor(() => tasksSeen(legacy).length === 1, 5000, 'the task on the shared bus');

      // Reconfigured: the same robot on its own bus.
      await legacy.close();
      const moved = new SimulatedDevice({
        mothUrl: s.config.MOTH_URL,
        channelPath: reg.channels.deviceManagement,
        token: reg.token,
      });
      await moved.connect();
      try {
        await waitFor(async () => !(await usesShared()), 5000, 'shown on its own bus');
        expect(await s.status(reg.id)).toBe('CONNECTED');
      } finally {
        await moved.close();
      }
    } finally {
      await legacy.close();
    }
  });
});

describe('once the migration window is closed (MOTH_SHARED_BUS=false)', () => {
  let s: TestSystem;
  beforeAll(async () => {
    s = await startTestSystem({ intervalSeconds: 1, maxMisses: 2, env: { MOTH_SHARED_BUS: 'false' } });
  });
  afterAll(async () => s.close());

  it('nobody holds the shared bus: a robot left there is never heard', async () => {
    const reg = await s.register();
    const legacy = new SimulatedDevice({
      mothUrl: s.config.MOTH_URL,
      channelPath: s.config.channels.sharedDeviceBus,
      token: reg.token,
    });
    await legacy.connect();
    try {
      const own = await s.device();
      await s.waitStatus(own.id, 'CONNECTED');
      await new Promise((r) => setTimeout(r, 3000));
      expect(legacy.received.filter((m) => m.type === 'HEALTHCHECK')).toEqual([]);
      expect(await s.status(reg.id)).toBe('DISCONNECTED');
    } finally {
      await legacy.close();
    }
  });
});
