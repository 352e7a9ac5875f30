import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSystem, waitFor, type TestSystem } from '../support/system';

// Each robot's link is measured from the HEALTHCHECK sent on its own bus to its answer: the round's
// HEALTHCHECKs go out across a spread, and a robot late in it is not charged for the wait. A link
// slower or lossier than its limits for the hold time is degraded (an event, no effect); it
// recovers only once well under them.

interface Link {
  state: 'ok' | 'degraded';
  p50Ms: number | null;
  p95Ms: number | null;
  maxMs: number | null;
  jitterMs: number | null;
  missShare: number;
  rounds: number;
}

const FLEET = 40;

describe('link quality per robot', () => {
  let s: TestSystem;
  beforeAll(async () => {
    s = await startTestSystem({
      intervalSeconds: 2,
      maxMisses: 3,
      // 40 buses in 5 ms steps: the last HEALTHCHECK leaves ~200 ms after the first.
      env: { LINK_REPORT_SECONDS: '1', LINK_WINDOW_ROUNDS: '10', MOTH_HEALTHCHECK_SPREAD_MS: '1500' },
      // Every 2 s: a 700 ms answer is never late for its round, even on a loaded runner; a limit well
      // above what load adds to a fast robot's answers (a CI runner: 100-300 ms).
      settings: { 'device.linkMaxP95Ms': 400, 'device.linkDegradedHoldSeconds': 2 },
    });
  });
  afterAll(async () => s.close());

  const linkOf = async (id: string) =>
    ((await request(s.callback).get(`/devices/${id}`).set(s.admin)).body as { link: Link | null }).link;
  const feed = async () =>
    (
      (await request(s.callback).get('/events?limit=1000').set(s.admin)).body as {
        events: { type: string; deviceId: string; p95Ms: number | null; missShare: number }[];
      }
    ).events;

  it('measures each answer from the send on its own bus, finds the slow and lossy, degrades and recovers', async () => {
    let slowDelay = 700;
    const slow = await s.device({ replyDelayMs: () => slowDelay });
    const lossy = await s.device({ replyDelayMs: 10 });
    const fast: Awaited<ReturnType<TestSystem['device']>>[] = [];
    for (let i = 0; i < FLEET; i++) fast.push(await s.device({ replyDelayMs: 10 }));
    // The lossy robot leaves every third round unanswered (never 3 in a row: no disconnect).
    const lossyDevice = lossy.device;
    lossyDevice.onRawFrame = (frame) => {
      const msg = JSON.parse(frame.toString()) as { type?: string; round?: number };
      if (msg.type !== 'HEALTHCHECK' || msg.round === undefined) return;
      lossyDevice.silent = msg.round % 3 === 0;
    };
    const all = [slow, lossy, ...fast];
    await Promise.all(all.map((d) => s.waitStatus(d.id, 'CONNECTED')));

    await waitFor(
      async () =>
        (await Promise.all(all.map((d) => linkOf(d.id)))).every((l) => l !== null && l.rounds >= 10),
      60_000,
      'every link measured over 10 rounds',
    );
    // Answered in 10 ms, relayed twice by the hub (its 5 ms poll): 20-60 ms measured from each bus's
    // send; from the round's start, the later half of the fleet would show 200-400 ms.
    const p95s = (await Promise.all(fast.map((d) => linkOf(d.id))))
      .map((l) => l!.p95Ms!)
      .sort((a, b) => a - b);
    expect(p95s[FLEET / 2]).toBeLessThan(150);
    const slowLink = (await linkOf(slow.id))!;
    expect(slowLink.p50Ms).toBeGreaterThanOrEqual(700);
    expect(slowLink.p50Ms).toBeLessThan(850);
    expect(slowLink.missShare).toBe(0);
    const lossyLink = (await linkOf(lossy.id))!;
    expect(lossyLink.missShare).toBeGreaterThan(0.2);
    expect(lossyLink.missShare).toBeLessThan(0.45);
    expect(await s.status(lossy.id)).toBe('CONNECTED');

    // The slow one alone by latency; the slow and the lossy ones by state, once the hold is over.
    const worse = await request(s.callback).get('/devices?linkWorseThan=500&limit=500').set(s.admin);
    expect((worse.body as { devices: { id: string }[] }).devices.map((d) => d.id)).toEqual([slow.id]);
    await waitFor(
      async () =>
        (await linkOf(slow.id))?.state === 'degraded' && (await linkOf(lossy.id))?.state === 'degraded',
      30_000,
      'the slow and the lossy links degraded',
    );
    const degraded = await request(s.callback).get('/devices?linkWorseThan=degraded').set(s.admin);
    expect((degraded.body as { devices: { id: string }[] }).devices.map((d) => d.id).sort()).toEqual(
      [slow.id, lossy.id].sort(),
    );
    await waitFor(
      async () => (await feed()).some((e) => e.type === 'DEVICE_LINK_DEGRADED' && e.deviceId === lossy.id),
      5000,
      'numbered',
    );
    const events = await feed();
    const slowDegraded = events.filter((e) => e.type === 'DEVICE_LINK_DEGRADED' && e.deviceId === slow.id);
    expect(slowDegraded).toHaveLength(1);
    expect(slowDegraded[0]!.p95Ms).toBeGreaterThan(400);
    expect(
      events.filter((e) => e.type.startsWith('DEVICE_LINK') && fast.some((d) => d.id === e.deviceId)),
    ).toEqual([]);
    // No effect runs for a degraded link: the robots stay connected.
    expect(await s.status(slow.id)).toBe('CONNECTED');

    // Back to 10 ms: once its window is clean and the hold over, it recovers, once.
    slowDelay = 10;
    await waitFor(async () => (await linkOf(slow.id))?.state === 'ok', 60_000, 'the slow link recovered');
    await waitFor(
      async () => (await feed()).some((e) => e.type === 'DEVICE_LINK_RECOVERED' && e.deviceId === slow.id),
      5000,
      'numbered',
    );
    const after = await feed();
    expect(after.filter((e) => e.type === 'DEVICE_LINK_RECOVERED' && e.deviceId === slow.id)).toHaveLength(1);
    expect(after.filter((e) => e.type === 'DEVICE_LINK_DEGRADED' && e.deviceId === slow.id)).toHaveLength(1);
  }, 180_000);
});
