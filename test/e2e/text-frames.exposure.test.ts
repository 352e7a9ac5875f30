import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedDevice } from '../../src/dev/simulated-device';
import { gatewayMetric, startTestSystem, waitFor, type TestSystem } from '../support/system';

// A heartbeat in a text frame still counts (some robots send text), but Moth keeps a text frame as the
// track's MIME and replays it, token included, to every later joiner: the token is flagged as exposed
// until it is rotated, and counted.

const textHeartbeats = (s: TestSystem) => gatewayMetric(s, 'rollcall_text_frame_heartbeats_total');
const exposed = async (s: TestSystem, id: string) =>
  ((await request(s.callback).get(`/devices/${id}`).set(s.admin)).body as { tokenExposed: boolean })
    .tokenExposed;
const onFleetPage = async (s: TestSystem, id: string) =>
  (
    (await request(s.callback).get('/admin/fleet.json').set(s.admin)).body as {
      devices: { id: string; tokenExposed: boolean }[];
    }
  ).devices.find((d) => d.id === id)?.tokenExposed;

describe('heartbeats in text frames', () => {
  let s: TestSystem;
  beforeAll(async () => {
    s = await startTestSystem({ intervalSeconds: 1 });
  });
  afterAll(async () => s.close());

  it('count, but flag the token as exposed (API and fleet page) until it is rotated', async () => {
    const before = await textHeartbeats(s);
    const text = await s.device({ textFrames: true });
    const binary = await s.device();
    await s.waitStatus(text.id, 'CONNECTED');
    await s.waitStatus(binary.id, 'CONNECTED');
    await waitFor(() => exposed(s, text.id), 5000, 'flagged');
    expect(await onFleetPage(s, text.id)).toBe(true);
    expect(await exposed(s, binary.id)).toBe(false);
    expect(await onFleetPage(s, binary.id)).toBe(false);
    await waitFor(async () => (await textHeartbeats(s)) >= before + 2, 5000, 'counted each round');

    // Rotated: the new token is not exposed, until it too goes out as text.
    const rotated = await request(s.callback).post(`/devices/${text.id}/token`).set(s.admin);
    expect(await exposed(s, text.id)).toBe(false);
    await text.device.close();
    const again = new SimulatedDevice({
      mothUrl: s.config.MOTH_URL,
      channelPath: text.reg.channels.deviceManagement,
      token: (rotated.body as { token: string }).token,
      textFrames: true,
      replyDelayMs: () => Math.random() * 50,
    });
    await again.connect();
    try {
      await s.waitStatus(text.id, 'CONNECTED', 10_000);
      await waitFor(() => exposed(s, text.id), 5000, 'flagged again');
    } finally {
      await again.close();
    }
  });
});
