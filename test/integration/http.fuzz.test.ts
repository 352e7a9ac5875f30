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

  it('a NUL or an unpaired surrogate anywhere in a value or key is a 400 naming that field', async () => {
    const reg = await request(t.callback)
      .post('/devices')
      .set('X-Forwarded-For', '203.0.113.11')
      .send(registration({ name: 'poison-target', actions: ['LINE_TRACKING'] }));
    expect(reg.status).toBe(201);
    const { id } = reg.body as { id: string };
    const poison = fc
      .record({
        before: fc.string({ maxLength: 8 }),
        bad: fc.constantFrom('\u0000', '\ud800', '\udbff', '\udc00', '\udfff'),
        after: fc.string({ maxLength: 8 }),
      })
      .map(({ before, bad, after }) => ({ text: before + bad + after, shown: `${before}\uFFFD${after}` }));
    // Where it goes: [route, body built around it, the field the answer must name].
    type Target = (p: { text: string; shown: string }) => [string, unknown, string];
    const targets: Target[] = [
      (p) => ['/devices', registration({ name: p.text }), 'name'],
      (p) => [
        '/devices',
        registration({
          tracks: [
            { name: 'cam', type: 'VIDEO' },
            { name: p.text, type: 'DATA' },
          ],
        }),
        'tracks.1.name',
      ],
      (p) => ['/devices', registration({ actions: ['A', 'B', p.text] }), 'actions.2'],
      (p) => [
        `/devices/${id}/tasks`,
        { action: 'LINE_TRACKING', payload: { deep: { [p.text]: 1 } } },
        `payload.deep.${p.shown}`,
      ],
      (p) => [
        `/devices/${id}/tasks`,
        { action: 'LINE_TRACKING', payload: { list: [0, { note: p.text }] } },
        'payload.list.1.note',
      ],
    ];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...targets), poison, async (target, p) => {
        const [path, body, field] = target(p);
        const res = await request(t.callback)
          .post(path)
          .set('X-Forwarded-For', nextIp())
          .set(path === '/devices' ? {} : admin)
          .set('Content-Type', 'application/json')
          .send(JSON.stringify(body));
        expect(res.status).toBe(400);
        expect(res.body).toMatchObject({ error: { code: 'UNSTORABLE_STRING', details: { field } } });
      }),
      { numRuns: 100 },
    );
  });
});
