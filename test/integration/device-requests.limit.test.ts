import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEVICE_REQUEST_LIMIT } from '../../src/http/app';
import { admin, createTestApp, registration } from '../support/app';

let t: Awaited<ReturnType<typeof createTestApp>>;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

const register = async (name: string) =>
  (await request(t.callback).post('/devices').send(registration({ name }))).body as {
    id: string;
    token: string;
  };

describe("a device's own requests", () => {
  it('are limited per device: past its rate it hears 429 for the window; another robot behind the same address does not', async () => {
    const [busy, neighbour] = [await register('busy-robot'), await register('neighbour-robot')];
    const own = (d: { id: string; token: string }) =>
      request(t.callback)
        .get(`/devices/${d.id}/commands`)
        .set({ Authorization: `Bearer ${d.token}` });
    const statuses: number[] = [];
    for (let i = 0; i < DEVICE_REQUEST_LIMIT.max + 5; i += 25)
      statuses.push(...(await Promise.all(Array.from({ length: 25 }, () => own(busy)))).map((r) => r.status));
    expect(statuses.filter((s) => s === 200)).toHaveLength(DEVICE_REQUEST_LIMIT.max);
    const refused = await own(busy);
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ error: { code: 'TOO_MANY_REQUESTS' } });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect((await own(neighbour)).status).toBe(200);
    expect((await request(t.callback).get(`/devices/${busy.id}/commands`).set(admin)).status).toBe(200);
  });
});
