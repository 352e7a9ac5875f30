import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSettingsService, SECRET_CACHE_MS } from '../../src/settings-service';
import { admin, createTestApp, registration, SECRET } from '../support/app';

let t: Awaited<ReturnType<typeof createTestApp>>;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

const get = () => request(t.callback).get('/server-settings').set(admin);
const patch = (body: unknown, type = 'application/merge-patch+json') =>
  request(t.callback)
    .patch('/server-settings')
    .set(admin)
    .set('Content-Type', type)
    .send(JSON.stringify(body));

describe('/server-settings', () => {
  it('shows the defaults and whether a secret is configured, never the secret', async () => {
    const res = await get();
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      device: {
        healthcheckIntervalSeconds: 5,
        healthcheckMaxConsecutiveMisses: 3,
        massSilenceRatio: 0.5,
        massSilenceMinDevices: 10,
        massSilenceMaxHeldRounds: 3,
        flapThreshold: 3,
        flapWindowSeconds: 600,
        flapHoldSeconds: 60,
        linkMaxP95Ms: 500,
        linkMaxMissShare: 0.2,
        linkDegradedHoldSeconds: 60,
        maxDevices: 100_000,
        secretKeyConfigured: true,
      },
      recording: { automatic: true },
      webhook: { maxWebhooks: 100 },
    });
    expect(JSON.stringify(res.body)).not.toContain(SECRET);
  });

  it('merges a patch: named keys change, others stay; null resets to the default', async () => {
    let res = await patch({ device: { healthcheckIntervalSeconds: 10 } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      device: { healthcheckIntervalSeconds: 10, healthcheckMaxConsecutiveMisses: 3 },
    });
    res = await patch({ device: { healthcheckMaxConsecutiveMisses: 7 }, recording: { automatic: false } });
    expect(res.body).toMatchObject({
      device: { healthcheckIntervalSeconds: 10, healthcheckMaxConsecutiveMisses: 7 },
      recording: { automatic: false },
    });
    res = await patch({ device: { healthcheckIntervalSeconds: null } });
    expect(res.body).toMatchObject({
      device: { healthcheckIntervalSeconds: 5, healthcheckMaxConsecutiveMisses: 7 },
    });
    res = await patch({ device: null, recording: null });
    expect(res.body).toMatchObject({
      device: {
        healthcheckIntervalSeconds: 5,
        healthcheckMaxConsecutiveMisses: 3,
        secretKeyConfigured: true,
      },
      recording: { automatic: true },
    });
    // plain application/json is accepted too
    expect((await patch({}, 'application/json')).status).toBe(200);
  });

  it('is visible to every process and reschedules the rounds', async () => {
    await patch({ device: { healthcheckIntervalSeconds: 42 } });
    expect(await t.redis.get(t.keys.rounds.schedulerEvery)).toBe('42');
    const otherProcess = createSettingsService(t.db, async () => {});
    expect((await otherProcess.current())['device.healthcheckIntervalSeconds']).toBe(42);
    await patch({ device: { healthcheckIntervalSeconds: null } });
  });

  it.each([
    [{ device: { healthcheckIntervalSeconds: 0 } }, 'device.healthcheckIntervalSeconds'],
    [{ device: { healthcheckIntervalSeconds: 3601 } }, 'device.healthcheckIntervalSeconds'],
    [{ device: { healthcheckIntervalSeconds: 2.5 } }, 'device.healthcheckIntervalSeconds'],
    [{ device: { healthcheckIntervalSeconds: '5' } }, 'device.healthcheckIntervalSeconds'],
    [{ device: { healthcheckMaxConsecutiveMisses: 0 } }, 'device.healthcheckMaxConsecutiveMisses'],
    [{ device: { healthcheckMaxConsecutiveMisses: 101 } }, 'device.healthcheckMaxConsecutiveMisses'],
    [{ device: { secretKey: 'short' } }, 'device.secretKey'],
    [{ device: { massSilenceRatio: 0 } }, 'device.massSilenceRatio'],
    [{ device: { massSilenceRatio: 1.5 } }, 'device.massSilenceRatio'],
    [{ device: { massSilenceMinDevices: 0 } }, 'device.massSilenceMinDevices'],
    [{ device: { massSilenceMaxHeldRounds: -1 } }, 'device.massSilenceMaxHeldRounds'],
    [{ device: { secretKey: null } }, 'device.secretKey'],
    [{ device: { secretKeyConfigured: false } }, 'device.secretKeyConfigured'],
    [{ device: { color: 'red' } }, 'device'],
    [{ recording: { automatic: 'yes' } }, 'recording.automatic'],
    [{ nope: 1 }, ''],
    [[1, 2], ''],
    [7, ''],
  ])('400 VALIDATION_FAILED naming the field for %j, and changes nothing', async (body, field) => {
    const before = (await get()).body as unknown;
    const res = await patch(body);
    expect(res.status).toBe(400);
    const error = (res.body as { error: { code: string; details: { issues: { field: string }[] } } }).error;
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.details.issues.map((i) => i.field)).toContain(field);
    expect((await get()).body).toEqual(before);
  });

  it('sets a new registration secret: write-only, the old one stops working', async () => {
    const next = 'a-brand-new-secret-value';
    const res = await patch({ device: { secretKey: next } });
    expect(res.status).toBe(200);
    expect(JSON.stringify(res.body)).not.toContain(next);
    expect(res.body).toMatchObject({ device: { secretKeyConfigured: true } });
    const stored = JSON.stringify(await t.db('registration_secret').select());
    expect(stored).not.toContain(next);
    expect(
      (
        await request(t.callback)
          .post('/devices')
          .send(registration({ secretKey: SECRET }))
      ).status,
    ).toBe(401);
    expect(
      (
        await request(t.callback)
          .post('/devices')
          .send(registration({ secretKey: next }))
      ).status,
    ).toBe(201);
    expect(t.logs.text).not.toContain(next);
    await patch({ device: { secretKey: SECRET } });
  });

  it('a secret set through another replica applies here within SECRET_CACHE_MS', async () => {
    const register = async (secretKey: string) =>
      (await request(t.callback).post('/devices').send(registration({ secretKey }))).status;
    expect(await register(SECRET)).toBe(201); // this replica now holds the secret it read
    const next = 'set-by-another-replica-0123';
    const otherReplica = createSettingsService(t.db, async () => {});
    await otherReplica.apply({ device: { secretKey: next } }, { label: 'admin', address: '127.0.0.1' });
    // One attempt each once the period is over: polling with a wrong secret would trip the rate limit.
    await new Promise((r) => setTimeout(r, SECRET_CACHE_MS + 50));
    expect(await register(next)).toBe(201);
    expect(await register(SECRET)).toBe(401);
    await patch({ device: { secretKey: SECRET } });
    expect(await register(SECRET)).toBe(201);
  });
});
