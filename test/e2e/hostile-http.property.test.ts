import fc from 'fast-check';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES } from '../../src/http/openapi';
import { startTestSystem, type TestSystem } from '../support/system';

let s: TestSystem;
// The target of the random requests (it may get deleted or rotated), and a bystander that keeps
// answering health checks and must stay connected through it all.
let device: Awaited<ReturnType<TestSystem['device']>>;
let bystander: Awaited<ReturnType<TestSystem['device']>>;
beforeAll(async () => {
  s = await startTestSystem({ intervalSeconds: 1, maxMisses: 2, env: { TRUST_PROXY: 'true' } });
  device = await s.device();
  bystander = await s.device();
  await s.waitStatus(bystander.id, 'CONNECTED', 5000);
});
afterAll(async () => s.close());

const ids = () =>
  fc.oneof(
    fc.constant(device.id),
    fc.uuid(),
    fc.string({ maxLength: 40 }),
    fc.constant('%00'),
    fc.constant('..%2F..'),
  );
const groupNames = () => fc.oneof(fc.constant('line-a'), fc.string({ maxLength: 70 }), fc.constant('%2e%2e'));
const auth = () =>
  fc.oneof(
    fc.constant(undefined),
    fc.constant(`Bearer ${s.config.ADMIN_TOKEN}`),
    fc.constant(`Bearer ${device.reg.token}`),
    fc.constant(`Basic ${Buffer.from(`x:${s.config.ADMIN_TOKEN}`).toString('base64')}`),
    fc.string({ maxLength: 200 }),
    fc.constant('Bearer '),
    fc.constant('Basic !!!'),
  );
const bodies = fc.oneof(
  fc.jsonValue({ maxDepth: 5 }).map((v) => ({ type: 'application/json', data: JSON.stringify(v) })),
  fc.uint8Array({ maxLength: 1024 }).map((b) => ({ type: 'application/json', data: Buffer.from(b) })),
  fc.string({ maxLength: 300 }).map((t) => ({ type: 'text/plain', data: t })),
  fc
    .record(
      {
        track: fc.string({ maxLength: 70 }),
        pipeline: fc.string({ maxLength: 110 }),
        action: fc.string(),
        payload: fc.jsonValue({ maxDepth: 3 }),
      },
      { requiredKeys: [] },
    )
    .map((v) => ({
      type: 'application/json',
      data: JSON.stringify(v),
    })),
  fc.constant(undefined),
);
const queries = fc.dictionary(
  fc.oneof(fc.constantFrom('limit', 'cursor', 'status', 'x'), fc.string({ maxLength: 10 })),
  fc.oneof(
    fc.string({ maxLength: 30 }),
    fc.integer().map(String),
    fc.constantFrom('CONNECTED', '-1', '1e9', ''),
  ),
  { maxKeys: 4 },
);
const headers = fc.dictionary(
  fc.constantFrom(
    'x-forwarded-for',
    'content-length',
    'accept',
    'x-request-id',
    'transfer-encoding',
    'content-encoding',
  ),
  fc.string({ maxLength: 40 }).filter((v) => /^[\x20-\x7e]*$/.test(v)),
  { maxKeys: 3 },
);

describe('hostile HTTP input', () => {
  it('every route, with random ids, queries, headers, credentials and bodies: never a 5xx', async () => {
    const heapBefore = process.memoryUsage().heapUsed;
    let requests = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ROUTES),
        ids(),
        groupNames(),
        auth(),
        bodies,
        queries,
        headers,
        async (route, id, group, authorization, body, query, extra) => {
          const path = route.path
            .replace('{id}', encodeURIComponent(id))
            .replace('{name}', encodeURIComponent(group));
          let req = request(s.callback)[route.method](path).query(query);
          for (const [k, v] of Object.entries(extra)) {
            // content-length and transfer-encoding must stay consistent with what supertest sends
            if (k === 'content-length' || k === 'transfer-encoding') continue;
            req = req.set(k, v);
          }
          if (authorization !== undefined) req = req.set('Authorization', authorization);
          if (body) req = req.set('Content-Type', body.type).send(body.data);
          // A live stream answered 200 stays open: its head is all there is to judge (an error ends it).
          const res =
            route.ok[1] === 'text/event-stream'
              ? await req.timeout({ deadline: 1000 }).catch((err: { timeout?: number }) => {
                  if (err.timeout === undefined) throw err;
                  return { status: 200, text: '(a live stream, open)' };
                })
              : await req;
          requests++;
          expect(
            res.status,
            `${route.method.toUpperCase()} ${path} -> ${res.status} ${res.text.slice(0, 200)}`,
          ).toBeLessThan(500);
        },
      ),
      { numRuns: 1500 },
    );
    expect(requests).toBe(1500);
    // Three more rounds: whatever the requests did, the bystander is still heard and connected.
    await new Promise((r) => setTimeout(r, 3500));
    // The answering device stayed connected throughout.
    expect(await s.status(bystander.id)).toBe('CONNECTED');
    expect(s.eventsOf(bystander.id, 'DEVICE_DISCONNECTED')).toHaveLength(0);
    const growth = process.memoryUsage().heapUsed - heapBefore;
    expect(growth).toBeLessThan(200 * 1024 * 1024);
  }, 120_000);
});
