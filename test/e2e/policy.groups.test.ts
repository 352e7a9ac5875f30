import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastSession, roundsReceived, startTestSystem, waitFor, type TestSystem } from '../support/system';

// Health-check policy per device and per group, over HTTP and Moth: each device is disconnected after
// the misses its own policy allows (device over group over server), a robot checked every k-th round
// is asked only then, and a change applies from the next round.

/** The misses its DEVICE_DISCONNECTED event reports (the event follows the commit on the client channel). */
async function missedWhenDisconnected(s: TestSystem, id: string) {
  await waitFor(() => s.eventsOf(id, 'DEVICE_DISCONNECTED').length > 0, 5000, 'DEVICE_DISCONNECTED');
  return (s.eventsOf(id, 'DEVICE_DISCONNECTED')[0] as { missedRounds?: number }).missedRounds;
}
const detail = async (s: TestSystem, id: string) =>
  (await request(s.callback).get(`/devices/${id}`).set(s.admin)).body as {
    group: string | null;
    healthcheck: Record<string, { value: number; source: string }>;
    maintenance: { group?: string } | null;
  };

describe('health-check policy', () => {
  let s: TestSystem;
  beforeAll(async () => {
    s = await startTestSystem({ intervalSeconds: 1, maxMisses: 2 });
  });
  afterAll(async () => s.close());

  it("each device goes after its own policy's misses; a robot checked every 2nd round is asked only then", async () => {
    const put = await request(s.callback)
      .put('/device-groups/slow-links')
      .set(s.admin)
      .send({ healthcheck: { intervalMultiple: 2, linkMaxP95Ms: 800 } });
    expect(put.status).toBe(200);
    const plain = await s.device();
    const patient = await s.device();
    const slow = await s.device({}, { group: 'slow-links' });
    expect(
      (
        await request(s.callback)
          .patch(`/devices/${patient.id}`)
          .set(s.admin)
          .send({ healthcheck: { maxConsecutiveMisses: 4, linkMaxMissShare: 0.5 } })
      ).body,
    ).toMatchObject({
      healthcheck: {
        maxConsecutiveMisses: { value: 4, source: 'device' },
        linkMaxMissShare: { value: 0.5, source: 'device' },
      },
    });
    for (const d of [plain, patient, slow]) await s.waitStatus(d.id, 'CONNECTED', 5000);
    expect((await detail(s, slow.id)).healthcheck).toEqual({
      maxConsecutiveMisses: { value: 2, source: 'server' },
      intervalMultiple: { value: 2, source: 'group' },
      linkMaxP95Ms: { value: 800, source: 'group' },
      linkMaxMissShare: { value: 0.2, source: 'server' },
    });
    expect((await detail(s, patient.id)).healthcheck.intervalMultiple).toEqual({
      value: 1,
      source: 'server',
    });

    // The gateways learn which robots are checked every k-th round after each round, for the next:
    // the rounds from a second after the robot connected on.
    await new Promise((r) => setTimeout(r, 1500));
    const settled = roundsReceived(slow.device).length;
    await new Promise((r) => setTimeout(r, 4500));
    const asked = roundsReceived(slow.device)
      .slice(settled)
      .map((m) => m.round);
    expect(asked.length).toBeGreaterThanOrEqual(2);
    expect(asked.filter((r) => r % 2 !== 0)).toEqual([]);
    expect(roundsReceived(plain.device).filter((m) => m.round % 2 !== 0).length).toBeGreaterThan(0);

    for (const d of [plain, patient, slow]) d.device.silent = true;
    for (const d of [plain, patient, slow]) await s.waitStatus(d.id, 'DISCONNECTED', 12_000);
    // Server: 2 misses allowed; the patient device: 4; every 2nd round: (2 + 1) * 2 - 1 = 5 rounds.
    expect(await missedWhenDisconnected(s, plain.id)).toBe(3);
    expect(await missedWhenDisconnected(s, patient.id)).toBe(5);
    expect(await missedWhenDisconnected(s, slow.id)).toBe(6);
    for (const d of [plain, patient, slow])
      expect(await lastSession(s, d.id)).toMatchObject({ endReason: 'MISSED_HEARTBEATS' });
  }, 40_000);

  it("a group's policy changed while its device is connected applies from the next round", async () => {
    const d = await s.device({}, { group: 'line-b' });
    await s.waitStatus(d.id, 'CONNECTED', 5000);
    expect((await detail(s, d.id)).healthcheck.maxConsecutiveMisses).toMatchObject({ source: 'server' });
    await request(s.callback)
      .put('/device-groups/line-b')
      .set(s.admin)
      .send({ healthcheck: { maxConsecutiveMisses: 5 } })
      .expect(200);
    d.device.silent = true;
    await s.waitStatus(d.id, 'DISCONNECTED', 12_000);
    expect(await missedWhenDisconnected(s, d.id)).toBe(6);
    // Its own value (reset with null) falls back to the group's again.
    const patched = await request(s.callback)
      .patch(`/devices/${d.id}`)
      .set(s.admin)
      .send({ healthcheck: { maxConsecutiveMisses: 1 } });
    expect(patched.body).toMatchObject({
      healthcheck: { maxConsecutiveMisses: { value: 1, source: 'device' } },
    });
    const reset = await request(s.callback)
      .patch(`/devices/${d.id}`)
      .set(s.admin)
      .send({ healthcheck: { maxConsecutiveMisses: null } });
    expect(reset.body).toMatchObject({
      healthcheck: { maxConsecutiveMisses: { value: 5, source: 'group' } },
    });
  }, 30_000);

  it("a group's maintenance window covers its devices: silent, they leave as MAINTENANCE", async () => {
    await request(s.callback).put('/device-groups/dock').set(s.admin).send({}).expect(200);
    const [docked, other] = [await s.device({}, { group: 'dock' }), await s.device()];
    for (const d of [docked, other]) await s.waitStatus(d.id, 'CONNECTED', 5000);
    const until = new Date(Date.now() + 60_000).toISOString();
    const opened = await request(s.callback)
      .post('/device-groups/dock/maintenance')
      .set(s.admin)
      .send({ until, reason: 'charging dock' });
    expect(opened.status).toBe(200);
    expect((await detail(s, docked.id)).maintenance).toMatchObject({ group: 'dock' });
    expect((await detail(s, other.id)).maintenance).toBeNull();
    const listed = await request(s.callback).get('/devices').query({ group: 'dock' }).set(s.admin);
    expect((listed.body as { devices: { id: string }[] }).devices.map((x) => x.id)).toEqual([docked.id]);
    docked.device.silent = true;
    other.device.silent = true;
    await s.waitStatus(docked.id, 'DISCONNECTED', 8000);
    await s.waitStatus(other.id, 'DISCONNECTED', 8000);
    expect(await lastSession(s, docked.id)).toMatchObject({ endReason: 'MAINTENANCE' });
    expect(await lastSession(s, other.id)).toMatchObject({ endReason: 'MISSED_HEARTBEATS' });
    const groups = (await request(s.callback).get('/device-groups').set(s.admin)).body as {
      groups: { name: string; members: number }[];
    };
    expect(groups.groups.find((g) => g.name === 'dock')).toMatchObject({ members: 1 });
  }, 30_000);

  it('refuses bad policies, bad group names and unknown groups', async () => {
    const d = await s.register();
    const patch = (body: object) => request(s.callback).patch(`/devices/${d.id}`).set(s.admin).send(body);
    expect((await patch({ healthcheck: { maxConsecutiveMisses: 0 } })).status).toBe(400);
    expect((await patch({ healthcheck: { intervalMultiple: 61 } })).status).toBe(400);
    expect((await patch({ healthcheck: { linkMaxP95Ms: 0 } })).status).toBe(400);
    expect((await patch({ healthcheck: { linkMaxMissShare: 1.5 } })).status).toBe(400);
    const worse = await request(s.callback).get('/devices?linkWorseThan=slow').set(s.admin);
    expect(worse.status).toBe(400);
    expect((worse.body as { error: { code: string } }).error.code).toBe('VALIDATION_FAILED');
    expect((await patch({})).status).toBe(400);
    expect((await patch({ group: 'no spaces' })).status).toBe(400);
    expect((await request(s.callback).post('/devices').send({ group: '../x' })).status).toBe(400);
    const missing = await request(s.callback).get('/device-groups/nobody-here').set(s.admin);
    expect(missing.status).toBe(404);
    expect((missing.body as { error: { code: string } }).error.code).toBe('GROUP_NOT_FOUND');
    expect((await request(s.callback).put('/device-groups/x').send({})).status).toBe(401);
  });
});

describe('robots checked every k-th round and the mass-silence brake', () => {
  let s: TestSystem;
  beforeAll(async () => {
    s = await startTestSystem({
      intervalSeconds: 1,
      maxMisses: 2,
      settings: { 'device.massSilenceRatio': 0.5, 'device.massSilenceMinDevices': 2 },
    });
  });
  afterAll(async () => s.close());

  it('are not counted as silent in the rounds they are not asked', async () => {
    await request(s.callback)
      .put('/device-groups/every-3rd')
      .set(s.admin)
      .send({ healthcheck: { intervalMultiple: 3 } })
      .expect(200);
    const fleet = [
      await s.device({}, { group: 'every-3rd' }),
      await s.device({}, { group: 'every-3rd' }),
      await s.device({}, { group: 'every-3rd' }),
    ];
    for (const d of fleet) await s.waitStatus(d.id, 'CONNECTED', 8000);
    await new Promise((r) => setTimeout(r, 6500));
    expect(s.events.filter((e) => e.type === 'HEALTHCHECK_ROUND_HELD')).toEqual([]);
    for (const d of fleet) expect(await s.status(d.id)).toBe('CONNECTED');
  }, 30_000);
});
