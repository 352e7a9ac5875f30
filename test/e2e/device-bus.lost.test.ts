import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayMetric, startTestSystem, waitFor, type TestSystem } from '../support/system';

type Robot = Awaited<ReturnType<TestSystem['device']>>;

/** The track of a robot's own bus: what its path (and so the gateway's session on it) names. */
const trackOf = (r: Robot) => new URL(r.reg.channels.deviceManagement, 'ws://x').searchParams.get('track')!;

/** Every robot in one shard, so a session lost on one bus would have voided the others' rounds. */
const ONE_SHARD = { SHARDS: '1' };

describe('a bus the gateway keeps losing', () => {
  let s: TestSystem;
  beforeAll(async () => {
    s = await startTestSystem({ intervalSeconds: 1, maxMisses: 2, env: ONE_SHARD, mothProxy: true });
  });
  afterAll(async () => s.close());

  const busUnstable = async (r: Robot) =>
    ((await request(s.callback).get(`/devices/${r.id}`).set(s.admin)).body as { busUnstable: unknown })
      .busUnstable;
  const roundNow = async () => Number(await s.redis.get(s.keys.rounds.counter));
  /** Its connection sessions: one, still open, when it was never taken for silent. */
  const sessionsOf = (r: Robot) =>
    s
      .db('connection_sessions')
      .where({ device_id: r.id })
      .select<{ end_reason: string | null }[]>('end_reason');

  it('voids rounds for its own robot alone, a bounded few: the silent are caught in time, the answering are kept', async () => {
    const [steady, flaky, silent, silentFlaky] = [
      await s.device(),
      await s.device(),
      await s.device(),
      await s.device(),
    ];
    // Two more that answer: two buses of six lost is a member's doing, not Moth's nor the gateway's own
    // (more than half down voids every round, however long: see the last test).
    const others = [await s.device(), await s.device()];
    for (const r of [steady, flaky, silent, silentFlaky, ...others])
      await s.waitStatus(r.id, 'CONNECTED', 10_000);

    // Blips on flaky's bus every 1.5 s (the gateway rejoins within 200 ms); silentFlaky's bus is cut
    // whenever the gateway rejoins it.
    const cuts = [
      setInterval(() => s.mothProxy!.cut((p) => p.includes(trackOf(flaky))), 1500),
      setInterval(() => s.mothProxy!.cut((p) => p.includes(trackOf(silentFlaky))), 300),
    ];
    try {
      await new Promise((r) => setTimeout(r, 3000));
      silent.device.silent = true;
      silentFlaky.device.silent = true;
      const [quietAt, quietRound] = [Date.now(), await roundNow()];

      await s.waitStatus(silent.id, 'DISCONNECTED', 10_000);
      // At most (allowed + 2) intervals, plus the evaluation: no round of its was void.
      expect(Date.now() - quietAt).toBeLessThan(6500);

      await s.waitStatus(silentFlaky.id, 'DISCONNECTED', 15_000);
      // Its bus was down in every round since: at most 2 of them excused, then its silence counted.
      expect((await roundNow()) - quietRound).toBeLessThanOrEqual(3 + 2 + 2);

      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      cuts.forEach(clearInterval);
    }
    // The answering robots were never taken for silent, the flaky bus notwithstanding.
    for (const r of [steady, flaky, ...others]) {
      expect(await s.status(r.id)).toBe('CONNECTED');
      expect(await sessionsOf(r)).toEqual([{ end_reason: null }]);
    }
    expect(await gatewayMetric(s, 'rollcall_gateway_buses_lost_total')).toBeGreaterThan(3);

    // The alarm: the buses lost 3 times within 10 minutes are marked, once each, the steady one not.
    await waitFor(() => s.eventsOf(flaky.id, 'DEVICE_BUS_UNSTABLE').length > 0, 5000, 'flaky marked');
    expect(s.eventsOf(flaky.id, 'DEVICE_BUS_UNSTABLE')).toHaveLength(1);
    expect(s.eventsOf(steady.id, 'DEVICE_BUS_UNSTABLE')).toEqual([]);
    expect(await busUnstable(flaky)).toEqual({ since: expect.any(String) as unknown });
    expect(await busUnstable(steady)).toBeNull();
    // ...and on the fleet page.
    const fleet = (await request(s.callback).get('/admin/fleet.json').query({ limit: 500 }).set(s.admin))
      .body as { devices: { id: string; busUnstableSince: string | null }[] };
    const shown = (r: Robot) => fleet.devices.find((d) => d.id === r.id)!.busUnstableSince;
    expect(shown(flaky)).not.toBeNull();
    expect(shown(steady)).toBeNull();
  });

  it('an answering robot whose bus the gateway cannot rejoin for 4.5 s is not taken for silent', async () => {
    const r = await s.device();
    await s.waitStatus(r.id, 'CONNECTED', 10_000);
    const lostBefore = await gatewayMetric(s, 'rollcall_gateway_buses_lost_total');
    // Its HEALTHCHECKs of 4 or 5 rounds never leave: were they all counted against it, more than it is
    // allowed to miss (2) while its bus is still down.
    s.mothProxy!.hold((p) => p.includes(trackOf(r)), 4500);
    await waitFor(
      async () => (await gatewayMetric(s, 'rollcall_gateway_buses_lost_total')) > lostBefore,
      5000,
      'the bus lost',
    );
    const heard = r.device.heartbeatsSent;
    await waitFor(() => r.device.heartbeatsSent > heard, 10_000, 'the bus back');
    await new Promise((done) => setTimeout(done, 3000));
    expect(await sessionsOf(r)).toEqual([{ end_reason: null }]);
    expect(await s.status(r.id)).toBe('CONNECTED');
  });

  it("a member's 16 MiB frame on its own bus costs the gateway no session: the shard's silent robot is caught in time", async () => {
    const [rogue, silent] = [await s.device(), await s.device()];
    for (const r of [rogue, silent]) await s.waitStatus(r.id, 'CONNECTED', 10_000);
    const lostBefore = await gatewayMetric(s, 'rollcall_gateway_buses_lost_total');

    // A text frame: Moth keeps it as the track's MIME and replays it to whoever joins later.
    rogue.device.sendRaw('x'.repeat(16 * 1024 * 1024 - 64), false);
    silent.device.silent = true;
    const quietAt = Date.now();
    await s.waitStatus(silent.id, 'DISCONNECTED', 10_000);
    expect(Date.now() - quietAt).toBeLessThan(6500);
    expect(await gatewayMetric(s, 'rollcall_gateway_buses_lost_total')).toBe(lostBefore);
    expect(await s.status(rogue.id)).toBe('CONNECTED');
  });

  it("the gateway's own link to Moth down for 8 intervals: every round void, however long; nobody disconnected", async () => {
    const robots = [await s.device(), await s.device(), await s.device()];
    for (const r of robots) await s.waitStatus(r.id, 'CONNECTED', 10_000);
    // The robots stay on Moth and keep answering; nothing they send reaches the gateway.
    s.mothProxy!.hold(() => true, 8000);
    await new Promise((r) => setTimeout(r, 8000));
    const heard = robots[0]!.device.heartbeatsSent;
    await waitFor(() => robots[0]!.device.heartbeatsSent >= heard + 3, 15_000, 'three rounds heard again');
    for (const r of robots) {
      expect(await sessionsOf(r)).toEqual([{ end_reason: null }]);
      expect(await s.status(r.id)).toBe('CONNECTED');
    }
  });
});
