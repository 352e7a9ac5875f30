import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAbortTask } from '../../jobs/abort-task';
import { abortSessionTask } from '../../src/operations/abort-session-task';
import { runTs, type Child } from '../../src/dev/child-process';
import { disconnectDevices } from '../../src/db/transitions';
import { effectProcessor } from '../../src/effects/run-effect';
import { createLogger } from '../../src/logger';
import { createMetrics } from '../../src/metrics';
import { bullConnection, createQueues } from '../../src/queues/connection';
import { startTestSystem, waitFor, type TestSystem } from '../support/system';

let s: TestSystem;
beforeAll(async () => {
  s = await startTestSystem({
    intervalSeconds: 1,
    maxMisses: 2,
    automaticRecording: true,
    env: {
      EFFECT_BACKOFF_MS: '200',
      EFFECT_ATTEMPTS: '30',
      JOB_LOCK_MS: '2000',
      SWEEP_INTERVAL_SECONDS: '1',
    },
  });
});
afterAll(async () => s.close());

const TRACKS = [
  { name: 'front', type: 'VIDEO' },
  { name: 'lidar', type: 'LIDAR' },
];

/** A connected robot with a recording running, a task in progress and an analysis stream. */
async function busyRobot() {
  const d = await s.device({}, { tracks: TRACKS, actions: ['PATROL'] });
  await s.waitStatus(d.id, 'CONNECTED', 5000);
  await waitFor(
    async () => (await recordings(d.id)).some((r) => r.state === 'STARTED'),
    5000,
    'automatic recording',
  );
  const task = (
    await request(s.callback)
      .post(`/devices/${d.id}/tasks`)
      .set(s.admin)
      .send({ action: 'PATROL', payload: { zone: 'A' } })
  ).body as { id: string };
  const started = await request(s.callback)
    .post(`/tasks/${task.id}/start`)
    .set({ Authorization: `Bearer ${d.reg.token}` });
  expect(started.body).toMatchObject({ status: 'IN_PROGRESS' });
  const stream = await request(s.callback)
    .post(`/devices/${d.id}/analysis-streams`)
    .set(s.admin)
    .send({ track: 'front', pipeline: 'person-detect' });
  expect(stream.status).toBe(201);
  return { ...d, taskId: task.id, streamId: (stream.body as { id: string }).id };
}

const recordings = async (id: string) =>
  (
    (await request(s.callback).get(`/devices/${id}/recordings`).set(s.admin)).body as {
      recordings: { id: string; state: string; sessionId: string }[];
    }
  ).recordings;
const taskStatus = async (id: string) =>
  ((await request(s.callback).get(`/tasks/${id}`).set(s.admin)).body as { status: string; reason: string })
    .status;
const streamState = async (deviceId: string, id: string) =>
  (
    (await request(s.callback).get(`/devices/${deviceId}/analysis-streams`).set(s.admin)).body as {
      analysisStreams: { id: string; state: string }[];
    }
  ).analysisStreams.find((x) => x.id === id)?.state;

describe('disconnect effects', () => {
  it('a silent device: task ABORTED, recording STOPPED, streams STOPPED, each event published once', async () => {
    const r = await busyRobot();
    expect(s.tgdm.active().filter((x) => x.body.deviceId === r.id)).toHaveLength(1);
    expect(s.tgdm.active()[0]!.body.uri).toMatch(
      new RegExp(`/pang/ws/sub\\?channel=instant&name=${r.id}&source=base&track=front$`),
    );
    r.device.silent = true;
    await s.waitStatus(r.id, 'DISCONNECTED', 8000);
    await waitFor(async () => (await taskStatus(r.taskId)) === 'ABORTED', 5000, 'task aborted');
    await waitFor(
      async () => (await recordings(r.id)).every((x) => x.state === 'STOPPED'),
      5000,
      'recording stopped',
    );
    await waitFor(async () => (await streamState(r.id, r.streamId)) === 'STOPPED', 5000, 'stream stopped');
    expect(s.tgdm.active().filter((x) => x.body.deviceId === r.id)).toHaveLength(0);
    expect(s.mantis.active().filter((x) => x.body.deviceId === r.id)).toHaveLength(0);
    const task = (await request(s.callback).get(`/tasks/${r.taskId}`).set(s.admin)).body as {
      reason: string;
    };
    expect(task.reason).toBe('DEVICE_DISCONNECTED');

    for (const type of [
      'TASK_ABORTED',
      'RECORDING_STOPPED',
      'ANALYSIS_STREAM_STOPPED',
      'DEVICE_DISCONNECTED',
    ]) {
      // On Moth, paced behind the other events of this system (the feed has them at once): a loaded
      // machine (CI runs many files side by side) takes longer than a quiet one.
      await waitFor(() => s.eventsOf(r.id, type).length > 0, 10_000, type);
    }
    await new Promise((res) => setTimeout(res, 1500));
    for (const type of [
      'TASK_ABORTED',
      'RECORDING_STOPPED',
      'ANALYSIS_STREAM_STOPPED',
      'DEVICE_DISCONNECTED',
    ]) {
      expect(new Set(s.eventsOf(r.id, type).map((e) => e.eventId)).size).toBe(1);
    }
    // The robot hears about the abort on its own channel, with the fields it reads.
    expect(r.device.received.find((m) => m.type === 'TASK_ABORTED')).toMatchObject({ task_id: r.taskId });

    const sessions = (await request(s.callback).get(`/devices/${r.id}/sessions`).set(s.admin)).body as {
      sessions: { effects: { kind: string; status: string; attempts: number }[] }[];
    };
    expect(sessions.sessions[0]!.effects.map((e) => [e.kind, e.status])).toEqual([
      ['abort-task', 'DONE'],
      ['start-recording', 'DONE'],
      ['stop-analysis-streams', 'DONE'],
      ['stop-recording', 'DONE'],
    ]);
  });

  it('TGDM answering 503 for a while: the task is aborted at once, the recording stopped after recovery', async () => {
    const r = await busyRobot();
    s.tgdm.failFor(6000, 503);
    r.device.silent = true;
    await s.waitStatus(r.id, 'DISCONNECTED', 8000);
    await waitFor(
      async () => (await taskStatus(r.taskId)) === 'ABORTED',
      2000,
      'task aborted without waiting for TGDM',
    );
    expect((await recordings(r.id)).some((x) => x.state === 'STARTED')).toBe(true);
    await waitFor(
      async () => (await recordings(r.id)).every((x) => x.state === 'STOPPED'),
      15_000,
      'recording stopped after recovery',
    );
    // The recording's row commits before its effect is marked done: read the effect once it is.
    const stopEffect = async () =>
      (
        (await request(s.callback).get(`/devices/${r.id}/sessions`).set(s.admin)).body as {
          sessions: {
            effects: { kind: string; status: string; attempts: number; lastError: string | null }[];
          }[];
        }
      ).sessions[0]!.effects.find((e) => e.kind === 'stop-recording')!;
    await waitFor(async () => (await stopEffect()).status === 'DONE', 5000, 'stop-recording marked done');
    const stop = await stopEffect();
    expect(stop.status).toBe('DONE');
    expect(stop.attempts).toBeGreaterThan(1);
    expect(stop.lastError).toMatch(/503/);
  }, 40_000);

  it('a permanent TGDM error (400) fails the effect without retrying, recorded with its reason', async () => {
    const r = await busyRobot();
    s.tgdm.faults.failStatus = 400;
    s.tgdm.faults.failCount = 1;
    r.device.silent = true;
    await s.waitStatus(r.id, 'DISCONNECTED', 8000);
    await waitFor(
      async () =>
        (await s.db('effects').where({ device_id: r.id, kind: 'stop-recording', status: 'FAILED' }))
          .length === 1,
      5000,
      'effect FAILED',
    );
    const row = (await s.db('effects').where({ device_id: r.id, kind: 'stop-recording' }).first()) as {
      attempts: number;
      last_error: string;
    };
    expect(row.attempts).toBe(1);
    expect(row.last_error).toMatch(/400/);
    s.tgdm.faults.failStatus = 503;
  });

  it('duplicate disconnect jobs abort one task, once', async () => {
    const d = await s.device({}, { actions: ['PATROL'] });
    await s.waitStatus(d.id, 'CONNECTED', 5000);
    const newTask = async () =>
      (await request(s.callback).post(`/devices/${d.id}/tasks`).set(s.admin).send({ action: 'PATROL' }))
        .body as { id: string };
    // Two open tasks: a duplicate run that did not find the effect done would abort the older one too.
    const older = await newTask();
    await new Promise((r) => setTimeout(r, 5));
    const task = await newTask();
    await d.device.close(); // out of the rounds, so only this test decides its fate
    const [ended] = await disconnectDevices(
      s.db,
      [{ deviceId: d.id, beforeRound: null, missedRounds: 3, lastRoundHeard: null, lastHeartbeatAt: null }],
      'MISSED_HEARTBEATS',
    );
    const processor = effectProcessor(createAbortTask({ abortSessionTask }), {
      db: s.db,
      metrics: createMetrics('test'),
      logger: createLogger('silent'),
      notYetDelayMs: 100,
    });
    const job = (id: string) => ({
      id,
      data: { sessionId: ended!.sessionId, deviceId: d.id },
      attemptsMade: 0,
      opts: { attempts: 3 },
    });
    // Five runs at once in this process, plus two more through the real queue under other job ids.
    const queues = createQueues(bullConnection(s.config.REDIS_URL, 'producer'), s.config.QUEUE_PREFIX);
    try {
      const data = { sessionId: ended!.sessionId, deviceId: d.id };
      await Promise.all([
        ...Array.from({ length: 5 }, (_, i) => processor(job(`dup-${i}`))),
        queues.effects.get('abort-task')!.addBulk([
          { name: 'abort-task', data, opts: { jobId: `extra-a-${ended!.sessionId}` } },
          { name: 'abort-task', data, opts: { jobId: `extra-b-${ended!.sessionId}` } },
        ]),
      ]);
    } finally {
      await queues.close();
    }
    await waitFor(async () => (await taskStatus(task.id)) === 'ABORTED', 5000, 'aborted');
    await new Promise((r) => setTimeout(r, 1500));
    const aborted = await s.db('outbox').where({ device_id: d.id, type: 'TASK_ABORTED', channel: 'client' });
    expect(aborted).toHaveLength(1);
    expect(await taskStatus(older.id)).toBe('PENDING');
  });

  it('the sweeper runs effects whose job was lost between commit and enqueue', async () => {
    const d = await s.device({}, { actions: ['PATROL'] });
    await s.waitStatus(d.id, 'CONNECTED', 5000);
    const task = (
      await request(s.callback).post(`/devices/${d.id}/tasks`).set(s.admin).send({ action: 'PATROL' })
    ).body as { id: string };
    await d.device.close();
    // The transition commits its effect rows, and the process "dies" before enqueueing anything.
    await disconnectDevices(
      s.db,
      [{ deviceId: d.id, beforeRound: null, missedRounds: 3, lastRoundHeard: null, lastHeartbeatAt: null }],
      'MISSED_HEARTBEATS',
    );
    await waitFor(async () => (await taskStatus(task.id)) === 'ABORTED', 15_000, 'aborted by the sweeper');
    await waitFor(
      async () => (await s.db('effects').where({ device_id: d.id, status: 'DONE' })).length >= 3,
      10_000,
      'every effect done',
    );
  }, 30_000);

  it('reconnect while effects are still retrying: each session keeps to its own resources', async () => {
    const r = await busyRobot();
    const oldSession = (await recordings(r.id))[0]!.sessionId;
    s.tgdm.failFor(5000, 503);
    r.device.silent = true;
    await s.waitStatus(r.id, 'DISCONNECTED', 8000);
    r.device.silent = false;
    await s.waitStatus(r.id, 'CONNECTED', 3000);
    await waitFor(
      async () => {
        const all = await recordings(r.id);
        return (
          all.some((x) => x.sessionId === oldSession && x.state === 'STOPPED') &&
          all.some((x) => x.sessionId !== oldSession && x.state === 'STARTED')
        );
      },
      20_000,
      'old recording stopped, new one started',
    );
    const all = await recordings(r.id);
    expect(all.filter((x) => x.sessionId === oldSession).map((x) => x.state)).toEqual(['STOPPED']);
    expect(all.filter((x) => x.sessionId !== oldSession).map((x) => x.state)).toEqual(['STARTED']);
    expect(s.tgdm.active().filter((x) => x.body.deviceId === r.id)).toHaveLength(1);
    // A stream started in the new session is not touched by the old session's effects.
    const fresh = await request(s.callback)
      .post(`/devices/${r.id}/analysis-streams`)
      .set(s.admin)
      .send({ track: 'front', pipeline: 'ocr' });
    await new Promise((res) => setTimeout(res, 1000));
    expect(await streamState(r.id, (fresh.body as { id: string }).id)).toBe('ACTIVE');
  }, 40_000);
});

describe('a worker killed in the middle of an effect', () => {
  let child: Child | undefined;
  afterAll(() => child?.signal('SIGKILL'));

  it('the effect is done exactly once after another worker takes over', async () => {
    const r = await busyRobot();
    // Only the child process runs effects now; TGDM is slow so the kill lands mid-call.
    for (const w of [...s.workers]) await s.stopRole(w);
    child = runTs(
      'workers/worker.ts',
      { ...stringEnv(s.config), LOG_LEVEL: 'warn', JOB_LOCK_MS: '2000', EFFECT_BACKOFF_MS: '200' },
      { inheritEnv: true },
    );
    s.tgdm.faults.latencyMs = 1500;
    r.device.silent = true;
    // The gateway still issues rounds; the child evaluates and runs the effects.
    await s.waitStatus(r.id, 'DISCONNECTED', 15_000);
    await waitFor(
      async () =>
        s.tgdm.stats.requests > 0 &&
        (
          await s
            .db('effects')
            .where({ device_id: r.id, kind: 'stop-recording' })
            .first<{ attempts: number }>('attempts')
        ).attempts >= 1,
      10_000,
      'stop in flight',
    );
    child.signal('SIGKILL');
    await new Promise((res) => setTimeout(res, 300));
    s.tgdm.faults.latencyMs = 0;
    await s.startWorker();
    await waitFor(
      async () => (await recordings(r.id)).every((x) => x.state === 'STOPPED'),
      20_000,
      'recording stopped after takeover',
    );
    await waitFor(async () => (await taskStatus(r.taskId)) === 'ABORTED', 10_000, 'task aborted');
    await new Promise((res) => setTimeout(res, 1500));
    expect(await s.db('outbox').where({ device_id: r.id, type: 'RECORDING_STOPPED' })).toHaveLength(1);
    expect(
      await s.db('outbox').where({ device_id: r.id, type: 'TASK_ABORTED', channel: 'client' }),
    ).toHaveLength(1);
    const stopRecording = (await s
      .db('effects')
      .where({ device_id: r.id, kind: 'stop-recording' })
      .first()) as { status: string };
    expect(stopRecording.status).toBe('DONE');
    expect(s.tgdm.stats.stops).toBeGreaterThan(0);
  }, 60_000);
});

function stringEnv(config: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['DATABASE_URL', 'REDIS_URL', 'MOTH_URL', 'TGDM_URL', 'MANTIS_URL', 'QUEUE_PREFIX'])
    out[k] = String(config[k]);
  return out;
}
