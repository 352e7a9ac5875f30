import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSystem, waitFor, type TestSystem } from '../support/system';

// A robot on a bad link: more failures than the threshold within the window mark it flapping (one
// DEVICE_FLAPPING per episode); meanwhile its automatic recording waits for it to stay connected the
// hold time, so a session shorter than that records nothing; a window without failure ends it.

interface Recording {
  sessionId: string | null;
  state: string;
  createdAt: string;
}
const recordings = async (s: TestSystem, id: string) =>
  (
    (await request(s.callback).get(`/devices/${id}/recordings`).set(s.admin)).body as {
      recordings: Recording[];
    }
  ).recordings;
const currentSession = async (s: TestSystem, id: string) =>
  ((await request(s.callback).get(`/devices/${id}`).set(s.admin)).body as { currentSessionId: string })
    .currentSessionId;
const flapping = async (s: TestSystem, id: string) =>
  (
    (await request(s.callback).get(`/devices/${id}`).set(s.admin)).body as {
      flapping: { since: string } | null;
    }
  ).flapping;

describe('flapping', () => {
  let s: TestSystem;
  beforeAll(async () => {
    s = await startTestSystem({
      intervalSeconds: 1,
      maxMisses: 1,
      automaticRecording: true,
      settings: { 'device.flapThreshold': 2, 'device.flapWindowSeconds': 20, 'device.flapHoldSeconds': 8 },
    });
  });
  afterAll(async () => s.close());

  it('marks a robot that keeps losing its link, holds its recording, and ends when it is stable', async () => {
    const d = await s.device({ replyDelayMs: () => 20 });
    const steady = await s.device({ replyDelayMs: () => 20 });
    await s.waitStatus(d.id, 'CONNECTED');
    const drop = async () => {
      d.device.silent = true;
      await s.waitStatus(d.id, 'DISCONNECTED', 6000);
      d.device.silent = false;
      await s.waitStatus(d.id, 'CONNECTED', 4000);
    };
    // Two failures: not more than the threshold.
    await drop();
    await drop();
    expect(await flapping(s, d.id)).toBeNull();
    expect(s.eventsOf(d.id, 'DEVICE_FLAPPING')).toHaveLength(0);
    // The third: flapping, once.
    await drop();
    await waitFor(() => s.eventsOf(d.id, 'DEVICE_FLAPPING').length > 0, 5000, 'DEVICE_FLAPPING');
    expect(s.eventsOf(d.id, 'DEVICE_FLAPPING')[0]).toMatchObject({ failures: 3, windowSeconds: 20 });
    expect(await flapping(s, d.id)).not.toBeNull();
    const listed = await request(s.callback).get('/devices').query({ flapping: 'true' }).set(s.admin);
    expect((listed.body as { devices: { id: string }[] }).devices.map((x) => x.id)).toEqual([d.id]);

    // A session shorter than the hold records nothing; a fourth failure is the same episode.
    const short = await currentSession(s, d.id);
    await drop();
    const held = await currentSession(s, d.id);
    await new Promise((r) => setTimeout(r, 3000));
    expect((await recordings(s, d.id)).filter((r) => r.sessionId === short || r.sessionId === held)).toEqual(
      [],
    );
    // Connected the hold time: its recording starts.
    await waitFor(
      async () => (await recordings(s, d.id)).some((r) => r.sessionId === held && r.state === 'STARTED'),
      10_000,
      'held recording started',
    );
    expect(s.eventsOf(d.id, 'DEVICE_FLAPPING')).toHaveLength(1);
    // The steady robot recorded at once and never flapped.
    expect((await recordings(s, steady.id)).map((r) => r.state)).toEqual(['STARTED']);
    expect(s.eventsOf(steady.id, 'DEVICE_FLAPPING')).toHaveLength(0);

    // A window without a failure: stable again.
    await waitFor(() => s.eventsOf(d.id, 'DEVICE_FLAPPING_ENDED').length > 0, 25_000, 'flapping ended');
    expect(await flapping(s, d.id)).toBeNull();
  }, 90_000);
});
