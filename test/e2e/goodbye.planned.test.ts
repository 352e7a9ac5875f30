import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedDevice } from '../../src/dev/simulated-device';
import {
  gatewayMetric,
  lastSession,
  startTestSystem,
  startedTask,
  waitFor,
  type TestSystem,
} from '../support/system';

// A robot that leaves on purpose says GOODBYE: it is disconnected at once (reason PLANNED) and its
// disconnect effects run, instead of waiting out its misses; counted apart from failures.

describe('GOODBYE: a planned disconnect', () => {
  let s: TestSystem;
  beforeAll(async () => {
    // Misses alone would take 3 rounds of 2 s: a goodbye must not wait for them.
    s = await startTestSystem({ intervalSeconds: 2, maxMisses: 3 });
  });
  afterAll(async () => s.close());

  it('disconnects at once with reason PLANNED, runs the effects, and counts apart from failures', async () => {
    const d = await s.device();
    await s.waitStatus(d.id, 'CONNECTED');
    const taskId = await startedTask(s, d);
    const missed = await gatewayMetric(s, 'rollcall_disconnects_total', { reason: 'MISSED_HEARTBEATS' });
    const saidAt = Date.now();
    d.device.goodbye();
    await s.waitStatus(d.id, 'DISCONNECTED', 1500);
    expect(Date.now() - saidAt).toBeLessThan(1500);
    expect(await lastSession(s, d.id)).toMatchObject({ endReason: 'PLANNED' });
    await waitFor(
      () => s.eventsOf(d.id, 'DEVICE_DISCONNECTED').some((e) => e.reason === 'PLANNED'),
      5000,
      'DEVICE_DISCONNECTED with reason PLANNED',
    );
    await waitFor(
      async () =>
        ((await request(s.callback).get(`/tasks/${taskId}`).set(s.admin)).body as { status: string })
          .status === 'ABORTED',
      5000,
      'its task aborted',
    );
    expect(await gatewayMetric(s, 'rollcall_disconnects_total', { reason: 'PLANNED' })).toBe(1);
    expect(await gatewayMetric(s, 'rollcall_disconnects_total', { reason: 'MISSED_HEARTBEATS' })).toBe(
      missed,
    );

    // Back on purpose, too: its next answer connects it again.
    d.device.silent = false;
    await s.waitStatus(d.id, 'CONNECTED', 5000);
  });

  it("a goodbye with another robot's token, or a heartbeat proof replayed as one, disconnects nobody", async () => {
    const a = await s.device();
    const b = await s.device();
    const v2 = await s.device({ protocol: 'v2' });
    await Promise.all([a, b, v2].map((d) => s.waitStatus(d.id, 'CONNECTED')));
    const listener = new SimulatedDevice({
      mothUrl: s.config.MOTH_URL,
      channelPath: v2.reg.channels.deviceManagement,
      token: 'not-a-token',
    });
    listener.silent = true;
    await listener.connect();
    try {
      a.device.sendRaw(Buffer.from(JSON.stringify({ type: 'GOODBYE', token: b.reg.token })));
      await waitFor(() => listener.received.some((m) => m.type === 'HEARTBEAT'), 5000, 'a proof heard');
      const proof = listener.received.filter((m) => m.type === 'HEARTBEAT').at(-1)!;
      listener.sendRaw(Buffer.from(JSON.stringify({ ...proof, type: 'GOODBYE' })));
      await new Promise((r) => setTimeout(r, 1500));
      // Still on their first sessions (a robot disconnected would be back by its next answer).
      for (const d of [a, b, v2]) {
        expect(await s.status(d.id)).toBe('CONNECTED');
        expect(await lastSession(s, d.id)).toMatchObject({ endReason: null, endedAt: null });
        expect(s.eventsOf(d.id, 'DEVICE_DISCONNECTED')).toEqual([]);
      }

      // The v2 robot's own goodbye, with a goodbye proof, is taken.
      v2.device.goodbye();
      await s.waitStatus(v2.id, 'DISCONNECTED', 1500);
      expect(await lastSession(s, v2.id)).toMatchObject({ endReason: 'PLANNED' });

      // Back in the next round; its goodbye, heard on its bus and replayed, counts no more.
      const goodbye = listener.received.filter((m) => m.type === 'GOODBYE').at(-1)!;
      v2.device.silent = false;
      await s.waitStatus(v2.id, 'CONNECTED', 5000);
      listener.sendRaw(Buffer.from(JSON.stringify(goodbye)));
      await new Promise((r) => setTimeout(r, 1500));
      expect(await s.status(v2.id)).toBe('CONNECTED');
      expect(await lastSession(s, v2.id)).toMatchObject({ endReason: null, endedAt: null });
    } finally {
      await listener.close();
    }
  });
});
