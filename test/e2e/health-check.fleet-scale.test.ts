import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedDevice } from '../../src/dev/simulated-device';
import { startTestSystem, waitFor, type TestSystem } from '../support/system';
import { detectionBound } from '../../src/domain/rounds';

// As the field saw it on Moth Lite: robots answering each HEALTHCHECK within 0-10 ms (TeamGRIT's
// send loop polls every 10 ms). On one shared track they collided and were disconnected by the dozen;
// each on a bus of its own, none may be.
const FLEET = 1000;
const INTERVAL = 2;
const MAX = 2;
const ROUNDS = 20;
const SILENT = 10;

let s: TestSystem;
const fleet: { id: string; device: SimulatedDevice }[] = [];
beforeAll(async () => {
  s = await startTestSystem({ intervalSeconds: INTERVAL, maxMisses: MAX });
  for (let i = 0; i < FLEET; i += 50) {
    const regs = await Promise.all(Array.from({ length: Math.min(50, FLEET - i) }, () => s.register()));
    for (const reg of regs) {
      const device = new SimulatedDevice({
        mothUrl: s.config.MOTH_URL,
        channelPath: reg.channels.deviceManagement,
        token: reg.token,
        replyDelayMs: () => Math.random() * 10,
      });
      fleet.push({ id: reg.id, device });
    }
  }
  for (let i = 0; i < FLEET; i += 100)
    await Promise.all(fleet.slice(i, i + 100).map((d) => d.device.connect()));
}, 120_000);
afterAll(async () => {
  await Promise.all(fleet.map((d) => d.device.close()));
  await s.close();
}, 60_000);

const count = async (type: string) =>
  Number((await s.db('outbox').where({ type }).count<{ n: string }[]>('* as n'))[0]!.n);
const connected = async () =>
  Number((await s.db('devices').where({ status: 'CONNECTED' }).count<{ n: string }[]>('* as n'))[0]!.n);
const roundsSeen = (d: SimulatedDevice) => d.received.filter((m) => m.type === 'HEALTHCHECK').length;

describe(`${FLEET} robots answering within 10 ms, each on a bus of its own`, () => {
  it(`stay connected through ${ROUNDS} rounds, none reads another's token; ${SILENT} gone silent are each disconnected once, in time`, async () => {
    await waitFor(async () => (await connected()) === FLEET, 30_000, 'the whole fleet connected');
    const start = Math.min(...fleet.map((d) => roundsSeen(d.device)));
    await waitFor(
      () => fleet.every((d) => roundsSeen(d.device) >= start + ROUNDS),
      (ROUNDS + 5) * INTERVAL * 1000,
      `${ROUNDS} rounds`,
    );
    expect(await count('DEVICE_DISCONNECTED')).toBe(0);
    expect(await connected()).toBe(FLEET);
    expect(fleet.reduce((n, d) => n + d.device.foreignTokens, 0)).toBe(0);
    // Every robot heard every round: no HEALTHCHECK lost on the way either.
    const heard = fleet.map((d) => roundsSeen(d.device) - start);
    expect(Math.min(...heard)).toBeGreaterThanOrEqual(ROUNDS);
    // A round's HEALTHCHECKs leave across the spread (500 ms by default), not in one burst: the median
    // of the last five rounds' spreads (one round alone can stretch on a loaded machine).
    const last = Math.max(...fleet[0]!.device.healthchecksAt.keys()) - 1;
    const spreads = [0, 1, 2, 3, 4]
      .map((k) => fleet.map((d) => d.device.healthchecksAt.get(last - k)!))
      .map((arrivals) => Math.max(...arrivals) - Math.min(...arrivals))
      .sort((a, b) => a - b);
    const spread = spreads[2]!;
    expect(spread).toBeGreaterThanOrEqual(s.config.MOTH_HEALTHCHECK_SPREAD_MS * 0.6);
    expect(spread).toBeLessThanOrEqual(s.config.MOTH_HEALTHCHECK_SPREAD_MS + 500);

    const silent = fleet.slice(0, SILENT);
    for (const d of silent) d.device.silent = true;
    await waitFor(
      async () => (await count('DEVICE_DISCONNECTED')) >= SILENT,
      20_000,
      'the silent disconnected',
    );
    await new Promise((r) => setTimeout(r, 2 * INTERVAL * 1000));
    const ended = await s
      .db('connection_sessions')
      .whereNotNull('ended_at')
      .select<{ device_id: string; ended_at: Date; end_reason: string }[]>(
        'device_id',
        'ended_at',
        'end_reason',
      );
    expect(ended.map((e) => e.device_id).sort()).toEqual(silent.map((d) => d.id).sort());
    for (const e of ended) {
      const last = silent.find((d) => d.id === e.device_id)!.device.lastHeartbeatAt!;
      const after = e.ended_at.getTime() - last;
      expect(e.end_reason).toBe('MISSED_HEARTBEATS');
      // Within the detection bound of the round rules, with 0.6 s of slack below (clocks of robot and
      // Postgres) and 1 s above (the evaluation's latency).
      const bound = detectionBound(MAX, INTERVAL * 1000);
      expect(after).toBeGreaterThanOrEqual(bound.minMs - 600);
      expect(after).toBeLessThanOrEqual(bound.maxMs + 1000);
    }
    expect(await count('DEVICE_DISCONNECTED')).toBe(SILENT);
    expect(await connected()).toBe(FLEET - SILENT);
  }, 180_000);
});
