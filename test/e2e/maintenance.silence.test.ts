import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastSession, startTestSystem, startedTask, waitFor, type TestSystem } from '../support/system';

// A device in maintenance is expected to go silent: it is disconnected as MAINTENANCE with no effect
// but stopping its recordings (when its window says so), and its silence is not the fleet's.

const taskStatus = async (s: TestSystem, id: string) =>
  ((await request(s.callback).get(`/tasks/${id}`).set(s.admin)).body as { status: string }).status;
const recordingStates = async (s: TestSystem, id: string) =>
  (
    (await request(s.callback).get(`/devices/${id}/recordings`).set(s.admin)).body as {
      recordings: { state: string }[];
    }
  ).recordings.map((r) => r.state);
const maintain = (s: TestSystem, id: string, body: Record<string, unknown>) =>
  request(s.callback).post(`/devices/${id}/maintenance`).set(s.admin).send(body);
const inAMinute = () => new Date(Date.now() + 60_000).toISOString();

/** A connected device with a task in progress and its automatic recording started. */
async function busyDevice(s: TestSystem) {
  const d = await s.device({ replyDelayMs: () => Math.random() * 50 });
  await s.waitStatus(d.id, 'CONNECTED');
  await waitFor(async () => (await recordingStates(s, d.id)).includes('STARTED'), 5000, 'recording');
  return { ...d, taskId: await startedTask(s, d) };
}

describe('maintenance', () => {
  let s: TestSystem;
  beforeAll(async () => {
    s = await startTestSystem({
      intervalSeconds: 1,
      maxMisses: 1,
      automaticRecording: true,
      // Two silent of three would be mass silence: unless their silence was expected.
      settings: {
        'device.massSilenceRatio': 0.5,
        'device.massSilenceMinDevices': 2,
        'device.massSilenceMaxHeldRounds': 10,
      },
    });
  });
  afterAll(async () => s.close());

  it('silent in maintenance: MAINTENANCE, only the recordings stopped, and no mass silence; silent otherwise: a failure', async () => {
    const [m, keep, f] = [await busyDevice(s), await busyDevice(s), await busyDevice(s)];
    const opened = await maintain(s, m.id, { until: inAMinute(), reason: 'battery swap' });
    expect(opened.status).toBe(200);
    expect(
      (await maintain(s, keep.id, { until: inAMinute(), reason: 'arm', stopRecordings: false })).status,
    ).toBe(200);
    const detail = (await request(s.callback).get(`/devices/${m.id}`).set(s.admin)).body as {
      maintenance: { reason: string; stopsRecordings: boolean } | null;
    };
    expect(detail.maintenance).toMatchObject({ reason: 'battery swap', stopsRecordings: true });

    m.device.silent = true;
    keep.device.silent = true;
    await s.waitStatus(m.id, 'DISCONNECTED', 6000);
    await s.waitStatus(keep.id, 'DISCONNECTED', 6000);
    expect(s.events.some((e) => e.type === 'HEALTHCHECK_ROUND_HELD')).toBe(false);
    for (const d of [m, keep]) expect(await lastSession(s, d.id)).toMatchObject({ endReason: 'MAINTENANCE' });
    await waitFor(
      async () => (await recordingStates(s, m.id)).includes('STOPPED'),
      5000,
      'recording stopped',
    );
    expect(await recordingStates(s, keep.id)).toEqual(['STARTED']);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await taskStatus(s, m.taskId)).toBe('IN_PROGRESS');
    expect(await taskStatus(s, keep.taskId)).toBe('IN_PROGRESS');

    // The same silence without a window is a failure, with every effect.
    f.device.silent = true;
    await s.waitStatus(f.id, 'DISCONNECTED', 6000);
    expect(await lastSession(s, f.id)).toMatchObject({ endReason: 'MISSED_HEARTBEATS' });
    await waitFor(async () => (await taskStatus(s, f.taskId)) === 'ABORTED', 5000, 'task aborted');
  });

  it('a window closed, or past its end, no longer covers the device; bad windows are refused', async () => {
    const d = await busyDevice(s);
    expect((await maintain(s, d.id, { until: inAMinute(), reason: 'x' })).status).toBe(200);
    expect((await request(s.callback).delete(`/devices/${d.id}/maintenance`).set(s.admin)).status).toBe(204);
    const detail = (await request(s.callback).get(`/devices/${d.id}`).set(s.admin)).body as {
      maintenance: unknown;
    };
    expect(detail.maintenance).toBeNull();
    // A window that ends before the silence: its own end, without anybody closing it.
    const e = await busyDevice(s);
    expect(
      (await maintain(s, e.id, { until: new Date(Date.now() + 1000).toISOString(), reason: 'short' })).status,
    ).toBe(200);
    await new Promise((r) => setTimeout(r, 1500));
    // One at a time: both at once would be mass silence (two of two).
    for (const x of [d, e]) {
      x.device.silent = true;
      await s.waitStatus(x.id, 'DISCONNECTED', 6000);
      expect(await lastSession(s, x.id)).toMatchObject({ endReason: 'MISSED_HEARTBEATS' });
    }

    for (const body of [
      { until: new Date(Date.now() - 1000).toISOString(), reason: 'past' },
      { until: new Date(Date.now() + 40 * 86_400_000).toISOString(), reason: 'too far' },
      { until: inAMinute(), reason: '' },
      { until: inAMinute() },
    ])
      expect((await maintain(s, d.id, body)).status, JSON.stringify(body)).toBe(400);
    expect(
      (await maintain(s, '00000000-0000-4000-8000-000000000000', { until: inAMinute(), reason: 'x' })).status,
    ).toBe(404);
  });
});
