import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { openApiDocument } from '../../src/http/openapi';
import * as out from '../../src/http/schemas';
import { SECRET } from '../support/app';
import { startTestSystem, waitFor, type TestSystem } from '../support/system';

let s: TestSystem;
beforeAll(async () => {
  s = await startTestSystem({ intervalSeconds: 1, maxMisses: 2, automaticRecording: true });
});
afterAll(async () => s.close());

const basic = (password: string) => ({
  Authorization: `Basic ${Buffer.from(`ops:${password}`).toString('base64')}`,
});

/** Parses a real response body with its documented schema; fails the test with the zod issues. */
function conforms<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const parsed = schema.safeParse(body);
  if (!parsed.success)
    throw new Error(
      `response does not match its schema: ${JSON.stringify(parsed.error.issues)}\n${JSON.stringify(body)}`,
    );
  return parsed.data;
}

describe('queue dashboard', () => {
  it('asks for Basic auth, with the admin token as password', async () => {
    const none = await request(s.callback).get('/admin/queues');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Basic/);
    expect((await request(s.callback).get('/admin/queues').set(basic('wrong'))).status).toBe(401);
    const page = await request(s.callback).get('/admin/queues').set(basic(s.config.ADMIN_TOKEN));
    expect(page.status).toBe(200);
    expect(page.text).toContain('<html');
  });

  it('shows every queue, and retry and clean work', { timeout: 30_000 }, async () => {
    const auth = basic(s.config.ADMIN_TOKEN);
    // What a browser adds to the dashboard's own requests (a change without it is refused).
    const fromDashboard = { ...auth, 'Sec-Fetch-Site': 'same-origin' };
    const list = await request(s.callback).get('/admin/queues/api/queues').set(auth);
    const names = (list.body as { queues: { name: string }[] }).queues.map((q) => q.name).sort();
    expect(names).toEqual(
      [
        'abort-task',
        'dispatch-effects',
        'evaluate-round',
        'issue-round',
        'start-recording',
        'stop-analysis-streams',
        'stop-recording',
        'sweep-effects',
        'fan-out-webhooks',
        'deliver-webhook',
      ].sort(),
    );
    // A job that fails for good: an effect of a session that does not exist.
    const { createQueues, bullConnection } = await import('../../src/queues/connection');
    const queues = createQueues(bullConnection(s.config.REDIS_URL, 'producer'), s.config.QUEUE_PREFIX);
    const q = queues.effects.get('abort-task')!;
    try {
      await q.add(
        'abort-task',
        {
          sessionId: '00000000-0000-4000-8000-000000000000',
          deviceId: '00000000-0000-4000-8000-000000000000',
        },
        { jobId: 'doomed' },
      );
      await waitFor(async () => (await q.getJobCounts('failed')).failed === 1, 5000, 'failed job');
      const retry = await request(s.callback)
        .put('/admin/queues/api/queues/abort-task/retry/failed')
        .set(fromDashboard);
      expect(retry.status).toBe(200);
      await waitFor(async () => ((await q.getJob('doomed'))?.attemptsStarted ?? 0) >= 2, 5000, 'job retried');
      await waitFor(async () => (await q.getJobCounts('failed')).failed === 1, 5000, 'failed again');
      await new Promise((r) => setTimeout(r, 5100)); // the dashboard keeps jobs that ended in the last 5 s
      const clean = await request(s.callback)
        .put('/admin/queues/api/queues/abort-task/clean/failed')
        .set(fromDashboard);
      expect(clean.status).toBe(200);
      await waitFor(async () => (await q.getJobCounts('failed')).failed === 0, 5000, 'cleaned');
    } finally {
      await queues.close();
    }
  });
});

describe('metrics and health', () => {
  it('each role exposes its metrics', async () => {
    const d = await s.device();
    await s.waitStatus(d.id, 'CONNECTED', 5000);
    const web = await request(s.callback).get('/metrics');
    expect(web.status).toBe(200);
    expect(web.text).toMatch(/rollcall_devices\{[^}]*status="CONNECTED"[^}]*\} [1-9]/);
    expect(web.text).toMatch(/rollcall_queue_jobs\{[^}]*queue="issue-round"/);
    expect(web.text).toContain('process_cpu_user_seconds_total');
    const gateway = await fetch(`http://127.0.0.1:${s.gateways[0]!.opsPort}/metrics`).then((r) => r.text());
    expect(gateway).toMatch(/rollcall_heartbeats_total\{[^}]*result="accepted"[^}]*\} [1-9]/);
    expect(gateway).toMatch(/rollcall_rounds_total\{[^}]*outcome="valid"/);
    expect(gateway).toMatch(/rollcall_transitions_total\{[^}]*to="CONNECTED"/);
    d.device.silent = true;
    await s.waitStatus(d.id, 'DISCONNECTED', 8000);
    await waitFor(
      async () => (await s.db('effects').where({ device_id: d.id, status: 'DONE' })).length >= 3,
      5000,
      'effects',
    );
    const worker = await fetch(`http://127.0.0.1:${s.workers[0]!.opsPort}/metrics`).then((r) => r.text());
    expect(worker).toMatch(/rollcall_transitions_total\{[^}]*to="DISCONNECTED"[^}]*\} [1-9]/);
    expect(worker).toMatch(/rollcall_detection_seconds_count\{[^}]*\} [1-9]/);
    expect(worker).toMatch(/rollcall_effects_total\{[^}]*effect="abort-task"[^}]*outcome="done"/);
    expect(worker).toMatch(/rollcall_effect_seconds_bucket/);
  });

  it('healthz answers; readyz checks Postgres, Redis and, for the gateway, the Moth session', async () => {
    expect((await request(s.callback).get('/healthz')).body).toEqual({ status: 'ok' });
    conforms(out.readyResponse, (await request(s.callback).get('/readyz')).body);
    const gw = `http://127.0.0.1:${s.gateways[0]!.opsPort}`;
    expect((await fetch(`${gw}/readyz`)).status).toBe(200);
    const port = s.hub.port;
    await s.stopHub();
    await waitFor(() => !s.gateways[0]!.clientChannel.isOpen, 3000, 'session down');
    const down = await fetch(`${gw}/readyz`);
    expect(down.status).toBe(503);
    expect(((await down.json()) as { error: { message: string } }).error.message).toMatch(/moth/);
    expect((await fetch(`http://127.0.0.1:${s.workers[0]!.opsPort}/readyz`)).status).toBe(200);
    await s.startHub();
    expect(s.hub.port).toBe(port);
    await waitFor(async () => (await fetch(`${gw}/readyz`)).status === 200, 10_000, 'ready again');
  });
});

describe('OpenAPI', () => {
  it('describes every route the app serves', async () => {
    const doc = (await request(s.callback).get('/openapi.json')).body as ReturnType<typeof openApiDocument>;
    expect(doc.openapi).toBe('3.1.0');
    const app = s.app as unknown as { routeTable: { method: string; path: string }[] };
    expect(app.routeTable.length).toBeGreaterThan(20);
    for (const { method, path } of app.routeTable) {
      const documented = doc.paths[path.replace(/:(\w+)/g, '{$1}')]?.[method.toLowerCase()];
      expect(documented, `${method} ${path}`).toBeDefined();
    }
    expect(doc.paths['/devices']!.post).toMatchObject({
      requestBody: { content: { 'application/json': { schema: { type: 'object' } } } },
    });
  });

  it('real responses match their schemas', async () => {
    const reg = conforms(
      out.registrationResponse,
      (
        await request(s.callback)
          .post('/devices')
          .send({
            name: `contract-${Date.now()}`,
            secretKey: SECRET,
            tracks: [{ name: 'front', type: 'VIDEO' }],
            actions: ['PATROL'],
          })
      ).body,
    );
    const dev = { Authorization: `Bearer ${reg.token}` };
    conforms(
      out.deviceDetailResponse,
      (await request(s.callback).get(`/devices/${reg.id}`).set(s.admin)).body,
    );
    conforms(out.deviceListResponse, (await request(s.callback).get('/devices?limit=2').set(s.admin)).body);
    conforms(
      out.sessionsResponse,
      (await request(s.callback).get(`/devices/${reg.id}/sessions`).set(s.admin)).body,
    );
    conforms(out.settingsResponse, (await request(s.callback).get('/server-settings').set(s.admin)).body);
    const task = conforms(
      out.taskResponse,
      (await request(s.callback).post(`/devices/${reg.id}/tasks`).set(s.admin).send({ action: 'PATROL' }))
        .body,
    );
    conforms(out.taskResponse, (await request(s.callback).post(`/tasks/${task.id}/start`).set(dev)).body);
    conforms(out.taskListResponse, (await request(s.callback).get(`/devices/${reg.id}/tasks`).set(dev)).body);
    const rec = conforms(
      out.recordingResponse,
      (await request(s.callback).post(`/devices/${reg.id}/recordings`).set(s.admin).send({ track: 'front' }))
        .body,
    );
    conforms(
      out.recordingResponse,
      (await request(s.callback).post(`/recordings/${rec.id}/stop`).set(s.admin)).body,
    );
    conforms(
      out.recordingListResponse,
      (await request(s.callback).get(`/devices/${reg.id}/recordings`).set(s.admin)).body,
    );
    const stream = conforms(
      out.streamResponse,
      (
        await request(s.callback)
          .post(`/devices/${reg.id}/analysis-streams`)
          .set(s.admin)
          .send({ track: 'front', pipeline: 'detect' })
      ).body,
    );
    conforms(
      out.streamResponse,
      (await request(s.callback).post(`/analysis-streams/${stream.id}/stop`).set(s.admin)).body,
    );
    conforms(
      out.streamListResponse,
      (await request(s.callback).get(`/devices/${reg.id}/analysis-streams`).set(s.admin)).body,
    );
    conforms(out.fleetResponse, (await request(s.callback).get('/admin/fleet.json').set(s.admin)).body);
    const history = (await request(s.callback).get('/admin/history.json?range=day').set(s.admin)).body as {
      connected: (number | null)[];
    };
    conforms(out.historyResponse, history);
    // A day ago this service did not exist: no data then, not zero devices; now, a count.
    expect(history.connected[0]).toBeNull();
    expect(history.connected.at(-1)).toEqual(expect.any(Number));
    conforms(out.groupsResponse, (await request(s.callback).get('/device-groups').set(s.admin)).body);
    conforms(out.webhooksResponse, (await request(s.callback).get('/webhooks').set(s.admin)).body);
    conforms(
      out.tokenResponse,
      (await request(s.callback).post(`/devices/${reg.id}/token`).set(s.admin)).body,
    );
    const answers = [
      await request(s.callback).post('/devices').send({}),
      await request(s.callback).get('/devices'),
      await request(s.callback).post(`/recordings/${rec.id}/stop`).set(s.admin).send(),
      await request(s.callback).post(`/devices/${reg.id}/recordings`).set(s.admin).send({ track: 'nope' }),
    ];
    expect(answers.map((r) => r.status)).toEqual([400, 401, 200, 400]);
    for (const res of answers) if (res.status >= 400) conforms(out.errorResponse, res.body);
    expect((await request(s.callback).delete(`/devices/${reg.id}`).set(s.admin)).status).toBe(204);
  });

  it('manual recordings report TGDM failures as 502, not as bad input', async () => {
    const reg = await s.register();
    s.tgdm.failFor(1000, 503);
    const res = await request(s.callback)
      .post(`/devices/${reg.id}/recordings`)
      .set(s.admin)
      .send({ track: 'front' });
    expect(res.status).toBe(502);
    expect(res.body).toMatchObject({ error: { code: 'TGDM_UNAVAILABLE' } });
    const rows = (await request(s.callback).get(`/devices/${reg.id}/recordings`).set(s.admin)).body as {
      recordings: { state: string }[];
    };
    expect(rows.recordings.map((r) => r.state)).toEqual(['FAILED']);
  });
});

describe('logs', () => {
  it('never contain a device token, the registration secret or the admin token', async () => {
    const reg = await s.register();
    await request(s.callback)
      .get(`/devices/${reg.id}`)
      .set({ Authorization: `Bearer ${reg.token}` });
    await request(s.callback).post(`/devices/${reg.id}/token`).set(s.admin);
    await request(s.callback)
      .post('/devices')
      .send({ name: 'x', secretKey: 'wrong-secret-value', tracks: [], actions: [] });
    expect(s.logs.text.length).toBeGreaterThan(0);
    expect(s.logs.text).toContain('requestId');
    expect(s.logs.text).not.toContain(reg.token);
    expect(s.logs.text).not.toContain(SECRET);
    expect(s.logs.text).not.toContain('wrong-secret-value');
    expect(s.logs.text).not.toContain(s.config.ADMIN_TOKEN);
  });
});
