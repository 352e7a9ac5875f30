import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedDevice } from '../../src/dev/simulated-device';
import { verifySignedFrame, type PublicJwk } from '../../src/domain/signatures';
import { startTestSystem, waitFor, type TestSystem } from '../support/system';

// A robot whose heartbeats are refused on its own bus is told why, in a signed REFUSED frame there
// (a robot with a rotated token can no longer ask the API), and its operators by DEVICE_AUTH_FAILED:
// once a minute per device at most, however often it answers.

describe('a robot refused on its bus is told why', () => {
  let s: TestSystem;
  beforeAll(async () => {
    s = await startTestSystem({ intervalSeconds: 1, maxMisses: 30 });
  });
  afterAll(async () => s.close());

  const keys = async () =>
    ((await request(s.callback).get('/.well-known/rollcall-keys')).body as { keys: PublicJwk[] }).keys;
  /** The REFUSED frames a robot heard, as sent, each checked against the key set. */
  const refusedFrames = (frames: Buffer[]) => frames.filter((f) => f.toString('utf8').includes('"REFUSED"'));

  it('a rotated token: UNKNOWN_TOKEN, signed, once a minute; operators get DEVICE_AUTH_FAILED', async () => {
    const d = await s.device();
    await s.waitStatus(d.id, 'CONNECTED');
    const heard: Buffer[] = [];
    d.device.onRawFrame = (frame) => heard.push(frame);
    const rotated = await request(s.callback)
      .post('/devices/tokens/rotate')
      .set(s.admin)
      .send({ ids: [d.id] });
    expect(rotated.status).toBe(200);
    // The robot keeps answering with its old token, every round.
    await waitFor(() => refusedFrames(heard).length > 0, 10_000, 'a REFUSED frame on its bus');
    const before = d.device.heartbeatsSent;
    await waitFor(() => d.device.heartbeatsSent >= before + 3, 10_000, 'three more refused rounds');
    const frames = refusedFrames(heard);
    expect(frames).toHaveLength(1);
    expect(verifySignedFrame(frames[0]!, await keys())).toMatchObject({
      type: 'REFUSED',
      code: 'UNKNOWN_TOKEN',
      deviceId: d.id,
    });
    await waitFor(() => s.eventsOf(d.id, 'DEVICE_AUTH_FAILED').length > 0, 5000, 'the operators event');
    expect(s.eventsOf(d.id, 'DEVICE_AUTH_FAILED')).toEqual([
      expect.objectContaining({ code: 'UNKNOWN_TOKEN' }),
    ]);
  });

  it("another robot's token on this bus: WRONG_BUS, and the token's owner is not named", async () => {
    const a = await s.device();
    const b = await s.device();
    await s.waitStatus(a.id, 'CONNECTED');
    // Someone on a's bus answers with b's (valid) token.
    const stranger = new SimulatedDevice({
      mothUrl: s.config.MOTH_URL,
      channelPath: a.reg.channels.deviceManagement,
      token: b.reg.token,
    });
    const heard: Buffer[] = [];
    stranger.onRawFrame = (frame) => heard.push(frame);
    await stranger.connect();
    try {
      await waitFor(() => refusedFrames(heard).length > 0, 10_000, 'a REFUSED frame');
      const notice = JSON.parse(refusedFrames(heard)[0]!.toString('utf8')) as Record<string, unknown>;
      expect(notice).toMatchObject({ type: 'REFUSED', code: 'WRONG_BUS', deviceId: a.id });
      expect(JSON.stringify(notice)).not.toContain(b.id);
      // b itself, on its own bus, was never refused.
      expect(s.eventsOf(b.id, 'DEVICE_AUTH_FAILED')).toEqual([]);
      expect(await s.status(b.id)).toBe('CONNECTED');
    } finally {
      await stranger.close();
    }
  });
});
