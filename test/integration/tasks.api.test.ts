import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, createTestApp, registration } from '../support/app';

let t: Awaited<ReturnType<typeof createTestApp>>;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

async function device() {
  const res = await request(t.callback)
    .post('/devices')
    .send(registration({ actions: ['LINE_TRACKING', 'DOCK'] }));
  return res.body as { id: string; token: string; name: string };
}
const as = (token: string) => ({ Authorization: `Bearer ${token}` });

async function task(deviceId: string, body: object = { action: 'LINE_TRACKING', payload: { speed: 0.5 } }) {
  const res = await request(t.callback).post(`/devices/${deviceId}/tasks`).set(admin).send(body);
  expect(res.status).toBe(201);
  return res.body as { id: string; status: string };
}

describe('tasks', () => {
  it('creates a PENDING task and announces it to clients and, with robot field names, to the device channel', async () => {
    const d = await device();
    const created = await task(d.id);
    expect(created).toMatchObject({
      status: 'PENDING',
      action: 'LINE_TRACKING',
      payload: { speed: 0.5 },
      deviceId: d.id,
    });
    const rows = (await t.db('outbox').where({ type: 'TASK_REGISTERED', device_id: d.id })) as {
      channel: string;
      body: Record<string, unknown>;
    }[];
    const client = rows.find((r) => r.channel === 'client')!.body;
    const robot = rows.find((r) => r.channel === 'device')!.body;
    expect(client).toMatchObject({
      type: 'TASK_REGISTERED',
      taskId: created.id,
      action: 'LINE_TRACKING',
      status: 'PENDING',
    });
    expect(robot).toMatchObject({
      type: 'TASK_REGISTERED',
      task_id: created.id,
      action_name: 'LINE_TRACKING',
      device_id: d.id,
      device_name: d.name,
      payload: { speed: 0.5 },
    });
    expect(robot.eventId).not.toBe(client.eventId);
  });

  it('refuses an action the device did not register, and a bad body', async () => {
    const d = await device();
    const res = await request(t.callback).post(`/devices/${d.id}/tasks`).set(admin).send({ action: 'FLY' });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({
      error: { code: 'VALIDATION_FAILED', details: { issues: [{ field: 'action' }] } },
    });
    expect(
      (
        await request(t.callback)
          .post(`/devices/${d.id}/tasks`)
          .set(admin)
          .send({ action: 'DOCK', payload: [1] })
      ).status,
    ).toBe(400);
    expect((await request(t.callback).post(`/devices/${d.id}/tasks`).send({ action: 'DOCK' })).status).toBe(
      401,
    );
  });

  it('follows the state machine: start, complete; illegal reports are 409 INVALID_TASK_TRANSITION', async () => {
    const d = await device();
    const x = await task(d.id);
    const report = (r: string, token = d.token) =>
      request(t.callback).post(`/tasks/${x.id}/${r}`).set(as(token));
    expect((await report('complete')).status).toBe(409);
    expect((await report('start')).body).toMatchObject({ status: 'IN_PROGRESS' });
    const again = await report('start');
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({
      error: { code: 'INVALID_TASK_TRANSITION', details: { status: 'IN_PROGRESS', report: 'start' } },
    });
    expect((await report('reject')).status).toBe(409);
    const done = await report('complete');
    expect(done.body).toMatchObject({ status: 'COMPLETED' });
    expect((done.body as { finishedAt: string | null }).finishedAt).not.toBeNull();
    expect((await report('abort')).status).toBe(409);
    const types = (await t
      .db('outbox')
      .where({ device_id: d.id, channel: 'client' })
      .orderBy('id')
      .pluck('type')) as string[];
    expect(types).toEqual(['DEVICE_REGISTERED', 'TASK_REGISTERED', 'TASK_STARTED', 'TASK_COMPLETED']);
  });

  it('reject from PENDING; abort stores the failPoint and goes to the device channel too', async () => {
    const d = await device();
    const r = await task(d.id);
    expect((await request(t.callback).post(`/tasks/${r.id}/reject`).set(as(d.token))).body).toMatchObject({
      status: 'REJECTED',
    });
    const a = await task(d.id, { action: 'DOCK' });
    await request(t.callback).post(`/tasks/${a.id}/start`).set(as(d.token));
    const aborted = await request(t.callback)
      .post(`/tasks/${a.id}/abort`)
      .set(as(d.token))
      .send({ failPoint: { waypoint: 7, reason: 'obstacle' } });
    expect(aborted.body).toMatchObject({
      status: 'ABORTED',
      failPoint: { waypoint: 7, reason: 'obstacle' },
      reason: 'DEVICE_ABORT',
    });
    const robot = (await t
      .db('outbox')
      .where({ type: 'TASK_ABORTED', channel: 'device', device_id: d.id })
      .first()) as {
      body: Record<string, unknown>;
    };
    expect(robot.body).toMatchObject({ type: 'TASK_ABORTED', task_id: a.id });
  });

  it('only the executing device reports; another device gets 403, no token 401; an operator may only abort', async () => {
    const d = await device();
    const other = await device();
    const x = await task(d.id);
    expect((await request(t.callback).post(`/tasks/${x.id}/start`).set(as(other.token))).status).toBe(403);
    expect((await request(t.callback).post(`/tasks/${x.id}/start`)).status).toBe(401);
    expect((await request(t.callback).post(`/tasks/${x.id}/start`).set(as('forged-token'))).status).toBe(401);
    expect((await request(t.callback).post(`/tasks/${x.id}/start`).set(admin)).status).toBe(403);
    expect((await request(t.callback).get(`/tasks/${x.id}`).set(as(other.token))).status).toBe(403);
    expect((await request(t.callback).get(`/tasks/${x.id}`).set(as(d.token))).status).toBe(200);
    expect((await request(t.callback).get(`/devices/${d.id}/tasks`).set(as(d.token))).body).toMatchObject({
      tasks: [{ id: x.id }],
    });
    expect((await request(t.callback).get(`/devices/${d.id}/tasks`).set(as(other.token))).status).toBe(403);
    const cancel = await request(t.callback).post(`/tasks/${x.id}/abort`).set(admin);
    expect(cancel.body).toMatchObject({ status: 'ABORTED', reason: 'OPERATOR_ABORT' });
  });

  it('404 TASK_NOT_FOUND; bad report bodies are 400', async () => {
    const d = await device();
    expect(
      (await request(t.callback).get('/tasks/00000000-0000-4000-8000-000000000000').set(admin)).status,
    ).toBe(404);
    expect((await request(t.callback).post('/tasks/nope/start').set(as(d.token))).status).toBe(404);
    const x = await task(d.id);
    expect(
      (await request(t.callback).post(`/tasks/${x.id}/start`).set(as(d.token)).send({ extra: 1 })).status,
    ).toBe(400);
    expect(
      (await request(t.callback).post(`/tasks/${x.id}/abort`).set(as(d.token)).send({ failPoint: 5 })).status,
    ).toBe(400);
  });
});
