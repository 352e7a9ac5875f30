import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedDevice } from '../../src/dev/simulated-device';
import { gatewayMetric, startTestSystem, waitFor, type TestSystem } from '../support/system';

// Protocol v2: a robot proves it holds its token for each round instead of sending it. What anyone on
// its bus hears is good for no other round, and once a robot has spoken v2 its plain token is refused.

const counter = (s: TestSystem, result: string) => gatewayMetric(s, 'rollcall_heartbeats_total', { result });
const protocolOf = async (s: TestSystem, id: string) =>
  ((await request(s.callback).get(`/devices/${id}`).set(s.admin)).body as { heartbeatProtocol: string })
    .heartbeatProtocol;
const plainHeartbeat = (token: string) => Buffer.from(JSON.stringify({ type: 'HEARTBEAT', token }));

describe('liveness proofs (protocol v2)', () => {
  let s: TestSystem;
  beforeAll(async () => {
    s = await startTestSystem({ intervalSeconds: 1, maxMisses: 2 });
  });
  afterAll(async () => s.close());

  it('a v2 robot lives on proofs; replayed, they keep nobody alive; its plain token is refused from then on', async () => {
    const { reg, device, id } = await s.device({ protocol: 'v2' });
    // Someone else on the robot's bus (it knows the bus id) hears every frame sent there.
    const listener = new SimulatedDevice({
      mothUrl: s.config.MOTH_URL,
      channelPath: reg.channels.deviceManagement,
      token: 'not-a-token',
    });
    listener.silent = true;
    await listener.connect();
    try {
      await s.waitStatus(id, 'CONNECTED');
      await waitFor(async () => (await protocolOf(s, id)) === 'v2', 5000, 'shown as v2');
      const proofs = () => listener.received.filter((m) => m.type === 'HEARTBEAT');
      await waitFor(() => proofs().length >= 3, 5000, 'proofs heard on the bus');
      expect(JSON.stringify(listener.received)).not.toContain(reg.token);
      expect(proofs().every((m) => typeof m.proof === 'string' && m.deviceId === id)).toBe(true);

      // The robot dies; the listener replays what it heard, every round and more.
      device.silent = true;
      const captured = proofs().map((m) => Buffer.from(JSON.stringify(m)));
      const before = { stale: await counter(s, 'stale'), bad: await counter(s, 'bad_proof') };
      // And forges one for the round open now (it hears each HEALTHCHECK, nonce included).
      const forged = (round: number) =>
        Buffer.from(
          JSON.stringify({
            type: 'HEARTBEAT',
            deviceId: id,
            round,
            proof: randomBytes(32).toString('base64url'),
          }),
        );
      const replay = setInterval(() => {
        for (const frame of captured) listener.sendRaw(frame);
        const rounds = [...listener.healthchecksAt.keys()];
        if (rounds.length > 0) listener.sendRaw(forged(Math.max(...rounds)));
      }, 250);
      try {
        await s.waitStatus(id, 'DISCONNECTED', 10_000);
      } finally {
        clearInterval(replay);
      }
      expect((await counter(s, 'stale')) + (await counter(s, 'bad_proof'))).toBeGreaterThan(
        before.stale + before.bad,
      );

      // Whoever learnt the token cannot bring it back with the plain form either.
      const downgrades = await counter(s, 'downgrade');
      const plain = setInterval(() => listener.sendRaw(plainHeartbeat(reg.token)), 250);
      try {
        await waitFor(
          async () => (await counter(s, 'downgrade')) >= downgrades + 3,
          5000,
          'downgrades refused',
        );
        await new Promise((r) => setTimeout(r, 2500));
        expect(await s.status(id)).toBe('DISCONNECTED');
      } finally {
        clearInterval(plain);
      }

      // The robot itself comes back, with proofs.
      device.silent = false;
      await s.waitStatus(id, 'CONNECTED', 10_000);
    } finally {
      await listener.close();
    }
  });

  it('after a rotation, proofs under the old token stop counting at once; the new one proves again', async () => {
    const { device, id, reg } = await s.device({ protocol: 'v2' });
    await s.waitStatus(id, 'CONNECTED');
    const rotated = await request(s.callback).post(`/devices/${id}/token`).set(s.admin);
    expect(rotated.status).toBe(200);
    await s.waitStatus(id, 'DISCONNECTED', 10_000);
    await device.close();
    const renewed = new SimulatedDevice({
      mothUrl: s.config.MOTH_URL,
      channelPath: reg.channels.deviceManagement,
      token: (rotated.body as { token: string }).token,
      deviceId: id,
      protocol: 'v2',
      replyDelayMs: () => Math.random() * 50,
    });
    await renewed.connect();
    try {
      await s.waitStatus(id, 'CONNECTED', 10_000);
    } finally {
      await renewed.close();
    }
  });

  it('a robot that never spoke v2 keeps its plain token, and HEALTHCHECK carries a fresh nonce each round', async () => {
    const { device, id } = await s.device();
    await s.waitStatus(id, 'CONNECTED');
    await waitFor(() => device.received.filter((m) => m.type === 'HEALTHCHECK').length >= 3, 5000, 'rounds');
    const nonces = device.received.filter((m) => m.type === 'HEALTHCHECK').map((m) => m.nonce);
    expect(nonces.every((n) => typeof n === 'string' && n.length >= 22)).toBe(true);
    expect(new Set(nonces).size).toBe(nonces.length);
    expect(await protocolOf(s, id)).toBe('v1');
  });
});
