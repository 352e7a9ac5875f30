import fc from 'fast-check';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, createTestApp, registration, SECRET } from '../support/app';

let t: Awaited<ReturnType<typeof createTestApp>>;
beforeAll(async () => {
  t = await createTestApp({ TRUST_PROXY: 'true' });
});
afterAll(async () => t.close());

// Anything a client can send: random JSON values, near-valid registrations, and raw bytes.
const anyJson = fc.jsonValue({ maxDepth: 6 });
const nearlyValid = fc.record(
  {
    name: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
    secretKey: fc.oneof(fc.constant(SECRET), fc.string()),
    tracks: fc.oneof(fc.array(fc.record({ name: fc.string(), type: fc.string() })), anyJson),
    actions: fc.oneof(fc.array(fc.string()), anyJson),
  },
  { requiredKeys: [] },
);
const bytes = fc.uint8Array({ maxLength: 2048 });

let ip = 0;
const nextIp = () => `198.51.100.${(ip++ % 250) + 1}`;

describe('hostile bodies never produce a 5xx', () => {
  it('POST /devices with random JSON and near-valid registrations', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(anyJson, nearlyValid), async (body) => {
        const res = await request(t.callback)
          .post('/devices')
          .set('X-Forwarded-For', nextIp())
          .set('Content-Type', 'application/json')
          .send(JSON.stringify(body));
        // Registered, or refused with a client error and its code: never a 5xx, never anything else.
        expect([201, 400, 401, 409, 413, 415, 429]).toContain(res.status);
        if (res.status >= 400) expect(res.body).toHaveProperty('error.code');
      }),
      { numRuns: 150 },
    );
  });

  it('POST /devices and PATCH /server-settings with random bytes', async () => {
    await fc.assert(
      fc.asyncProperty(
        bytes,
        fc.constantFrom('application/json', 'text/plain', 'application/merge-patch+json'),
        async (raw, type) => {
          const dev = await request(t.callback)
            .post('/devices')
            .set('X-Forwarded-For', nextIp())
            .set('Content-Type', type)
            .send(Buffer.from(raw));
          expect(dev.status).toBeLessThan(500);
          const set = await request(t.callback)
            .patch('/server-settings')
            .set(admin)
            .set('Content-Type', type)
            .send(Buffer.from(raw));
          expect(set.status).toBeLessThan(500);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('PATCH /server-settings with random JSON', async () => {
    const shaped = fc.record(
      {
        device: fc.oneof(
          anyJson,
          fc.record(
            {
              healthcheckIntervalSeconds: anyJson,
              healthcheckMaxConsecutiveMisses: anyJson,
              secretKey: fc.oneof(fc.string(), anyJson),
            },
            { requiredKeys: [] },
          ),
        ),
        recording: anyJson,
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(fc.oneof(anyJson, shaped), async (body) => {
        const res = await request(t.callback)
          .patch('/server-settings')
          .set(admin)
          .set('Content-Type', 'application/json')
          .send(JSON.stringify(body));
        expect(res.status).toBeLessThan(500);
      }),
      { numRuns: 150 },
    );
    // Whatever was thrown at it, the settings still read back valid and registration still works.
    const settings = await request(t.callback).get('/server-settings').set(admin);
    expect(settings.status).toBe(200);
    await request(t.callback)
      .patch('/server-settings')
      .set(admin)
      .send({ device: { secretKey: SECRET } });
    expect(
      (await request(t.callback).post('/devices').set('X-Forwarded-For', '203.0.113.1').send(registration()))
        .status,
    ).toBe(201);
  });

  it('deeply nested JSON is a 4xx, not a crash', async () => {
    const deep = '['.repeat(30_000) + ']'.repeat(30_000);
    const res = await request(t.callback).post('/devices').set('Content-Type', 'application/json').send(deep);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
  });

  it('strings Postgres cannot store and bodies nested beyond 32 levels are a 400 with a code', async () => {
    const reg = await request(t.callback)
      .post('/devices')
      .set('X-Forwarded-For', '203.0.113.9')
      .send(registration({ actions: ['LINE_TRACKING'] }));
    expect(reg.status).toBe(201);
    const { id, token } = reg.body as { id: string; token: string };
    const nested = (depth: number): unknown => {
      let v: unknown = 'leaf';
      for (let i = 0; i < depth; i++) v = { v };
      return v;
    };
    // Raw JSON text, so the escapes reach the server as the client wrote them.
    const cases: { path: string; auth: Record<string, string>; body: string; code: string }[] = [
      {
        path: '/devices',
        auth: {},
        body: JSON.stringify(registration({ actions: ['A\u0000B'] })),
        code: 'UNSTORABLE_STRING',
      },
      {
        path: '/devices',
        auth: {},
        body: JSON.stringify(registration()).replace('"front"', '"fr\\ud800nt"'),
        code: 'UNSTORABLE_STRING',
      },
      {
        path: `/devices/${id}/tasks`,
        auth: admin,
        body: '{"action":"LINE_TRACKING","payload":{"note":"\\udc00"}}',
        code: 'UNSTORABLE_STRING',
      },
      {
        path: `/devices/${id}/tasks`,
        auth: admin,
        body: '{"action":"LINE_TRACKING","payload":{"k\\u0000":1}}',
        code: 'UNSTORABLE_STRING',
      },
      {
        path: `/devices/${id}/tasks`,
        auth: admin,
        body: `{"action":"LINE_TRACKING","payload":${'{"v":'.repeat(5000)}1${'}'.repeat(5000)}}`,
        code: 'JSON_TOO_DEEP',
      },
    ];
    for (const c of cases) {
      const res = await request(t.callback)
        .post(c.path)
        .set('X-Forwarded-For', '203.0.113.10')
        .set(c.auth)
        .set('Content-Type', 'application/json')
        .send(c.body);
      expect(res.status, c.body.slice(0, 80)).toBe(400);
      expect((res.body as { error: { code: string } }).error.code).toBe(c.code);
    }
    // A task that nests within the limit, with a surrogate pair, is taken; and its abort reason is checked too.
    const ok = await request(t.callback)
      .post(`/devices/${id}/tasks`)
      .set(admin)
      .send({ action: 'LINE_TRACKING', payload: { ...(nested(30) as object), emoji: '🤖' } });
    expect(ok.status).toBe(201);
    const task = ok.body as { id: string };
    const abort = await request(t.callback)
      .post(`/tasks/${task.id}/abort`)
      .set({ Authorization: `Bearer ${token}` })
      .set('Content-Type', 'application/json')
      .send('{"reason":"lost \\ud83e"}');
    expect(abort.status).toBe(400);
    expect((abort.body as { error: { code: string } }).error.code).toBe('UNSTORABLE_STRING');
  });
});
