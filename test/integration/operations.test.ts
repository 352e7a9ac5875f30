import { randomUUID } from 'node:crypto';
import { createDestinationPolicy } from '../../src/domain/destinations';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { hashSecret, tokenHash } from '../../src/domain/credentials';
import type { SessionEffects } from '../../src/domain/effects';
import { SETTING_DEFAULTS, type SettingValues } from '../../src/domain/settings';
import type { Db } from '../../src/db/knex';
import { disconnectDevices } from '../../src/db/transitions';
import { createMantis } from '../../src/integrations/mantis';
import { createMantisSimulator, createTgdmSimulator } from '../../src/integrations/simulator';
import { createTgdm } from '../../src/integrations/tgdm';
import { createMetrics } from '../../src/metrics';
import { createApiOperations, type ApiOperations } from '../../src/operations';
import { abortSessionTask } from '../../src/operations/abort-session-task';
import { createConnectDevice } from '../../src/operations/connect-device';
import { createDisconnectBatch } from '../../src/operations/disconnect-batch';
import { createRedis, type RedisClient } from '../../src/redis/connection';
import { redisKeys } from '../../src/redis/keys';
import { createLiveness } from '../../src/redis/liveness';
import { createAttemptLimiter } from '../../src/redis/rate-limit';
import { shardOf } from '../../src/domain/shards';
import { createTestDatabase, uniquePrefix } from '../support/database';
import { insertDevices } from '../support/rows';

const operator = { label: 'admin', address: '127.0.0.1' };

// Each operation against real Postgres, Redis and the TGDM and Mantis simulators over HTTP: what it
// changed, and what it left as it was.

const SECRET = 'operations-secret';
const VIDEO = [
  { name: 'front', type: 'VIDEO' as const },
  { name: 'imu', type: 'ODOMETRY' as const },
];

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Db;
let redis: RedisClient;
let ops: ApiOperations;
let keys: ReturnType<typeof redisKeys>;
const tgdm = createTgdmSimulator();
const mantis = createMantisSimulator();
const handedOff: SessionEffects[] = [];
const metrics = createMetrics('test');
const settings: SettingValues = { ...SETTING_DEFAULTS, 'recording.automatic': true };
const connect = () => createConnectDevice({ db, settings: async () => settings });

beforeAll(async () => {
  database = await createTestDatabase();
  db = database.db;
  redis = createRedis(inject('redisUrl'), 'producer');
  keys = redisKeys(uniquePrefix());
  ops = createApiOperations({
    db,
    tgdm: createTgdm(await tgdm.start(), 2000),
    mantis: createMantis(await mantis.start(), 2000),
    mothUrl: 'ws://moth.test',
    liveness: createLiveness(redis, keys, 4),
    registrationSecret: async () => hashSecret(SECRET),
    settings: async () => settings,
    badSecrets: createAttemptLimiter(redis, keys.rateLimits.badSecret, 3, 60),
    countAuthFailure: () => {},
    metrics,
    webhookDestinations: createDestinationPolicy('127.0.0.1'),
    webhookMaxBacklog: 10_000,
    enqueueEffects: async (s) => void handedOff.push(...s),
  });
});
afterAll(async () => {
  await tgdm.stop();
  await mantis.stop();
  redis.disconnect();
  await database.drop();
});

/** The device's events in the outbox, in commit order: type, channel and body. */
async function eventsOf(deviceId: string) {
  return db('outbox')
    .where({ device_id: deviceId })
    .orderBy('id')
    .select<{ type: string; channel: string; body: Record<string, unknown> }[]>('type', 'channel', 'body');
}
const typesOf = async (deviceId: string) => (await eventsOf(deviceId)).map((e) => e.type);

/** A connected device (its session and connect effects written), with one VIDEO and one DATA Track. */
async function connectedDevice(actions: string[] = ['PATROL']) {
  const [id] = await insertDevices(db, 1, { tracks: VIDEO, actions });
  const session = await connect()(id!, 1);
  return { id: id!, sessionId: session!.sessionId };
}

const endSession = async (deviceId: string) =>
  (
    await disconnectDevices(
      db,
      [{ deviceId, beforeRound: null, missedRounds: 3, lastRoundHeard: 1, lastHeartbeatAt: null }],
      'MISSED_HEARTBEATS',
    )
  )[0]!;

describe('registering a device', () => {
  it('with the secret: the device and DEVICE_REGISTERED, the token stored as a hash only', async () => {
    const { device, token } = await ops.registerDevice(
      { name: 'reg-1', secretKey: SECRET, tracks: VIDEO, actions: ['GO'] },
      '10.0.0.1',
    );
    const row = await db('devices').where({ id: device.id }).first<{ token_hash: string; status: string }>();
    expect(row).toMatchObject({ token_hash: tokenHash(token), status: 'DISCONNECTED' });
    expect(await typesOf(device.id)).toEqual(['DEVICE_REGISTERED']);
  });

  it('with a wrong secret, or a taken name: nothing is written', async () => {
    const count = async () => [await db('devices').count('* as n'), await db('outbox').count('* as n')];
    const before = await count();
    await expect(
      ops.registerDevice({ name: 'reg-2', secretKey: 'wrong', tracks: [], actions: [] }, '10.0.0.2'),
    ).rejects.toMatchObject({ status: 401, code: 'INVALID_SECRET_KEY' });
    await expect(
      ops.registerDevice({ name: 'reg-1', secretKey: SECRET, tracks: [], actions: [] }, '10.0.0.3'),
    ).rejects.toMatchObject({ status: 409, code: 'DEVICE_NAME_TAKEN' });
    expect(await count()).toEqual(before);
  });
});

describe('deleting a device', () => {
  it('ends a connected session as DELETED with its effects; the other device is left alone', async () => {
    const [gone, stays] = [await connectedDevice(), await connectedDevice()];
    await ops.deleteDevice(operator, gone.id);
    const session = await db('connection_sessions')
      .where({ id: gone.sessionId })
      .first<{ end_reason: string }>();
    expect(session.end_reason).toBe('DELETED');
    expect(await typesOf(gone.id)).toEqual(['DEVICE_CONNECTED', 'DEVICE_DISCONNECTED', 'DEVICE_DELETED']);
    expect(handedOff.find((h) => h.sessionId === gone.sessionId)?.effects).toContain('abort-task');
    // Counted as every disconnect is, by its reason.
    const deleted = (await metrics.disconnects.get()).values.find((v) => v.labels.reason === 'DELETED');
    expect(deleted?.value).toBe(1);
    expect(await db('devices').where({ id: stays.id }).first()).toMatchObject({
      status: 'CONNECTED',
      deleted_at: null,
    });
    expect(await typesOf(stays.id)).toEqual(['DEVICE_CONNECTED']);
    // Its token is revoked in the heartbeat cache (a tombstone); the other device's is untouched.
    const cached = (id: string) => redis.hget(keys.liveness.shard(shardOf(id, 4)).tokens, `h-${id}`);
    expect(await cached(gone.id)).toBe('-');
    expect(await cached(stays.id)).toBeNull();
    await expect(ops.deleteDevice(operator, gone.id)).rejects.toMatchObject({ code: 'DEVICE_NOT_FOUND' });
  });
});

describe('rotating tokens', () => {
  it('one device: a new hash and DEVICE_TOKEN_ROTATED; the others keep theirs', async () => {
    const [a, b] = await insertDevices(db, 2);
    const token = await ops.rotateTokens.one(operator, a!);
    expect(await redis.hget(keys.liveness.shard(shardOf(a!, 4)).tokens, `h-${a}`)).toBe('-');
    expect((await db('devices').where({ id: a }).first<{ token_hash: string }>()).token_hash).toBe(
      tokenHash(token),
    );
    expect((await db('devices').where({ id: b }).first<{ token_hash: string }>()).token_hash).toBe(`h-${b}`);
    expect(await typesOf(a!)).toEqual(['DEVICE_TOKEN_ROTATED']);
    expect(await typesOf(b!)).toEqual([]);
  });

  it('by ids: exactly those, each token in the answer', async () => {
    const [a, b, c] = await insertDevices(db, 3);
    const rotated = await ops.rotateTokens.many(operator, { ids: [a!, b!] });
    expect(rotated.map((r) => r.id).sort()).toEqual([a, b].sort());
    for (const r of rotated)
      expect((await db('devices').where({ id: r.id }).first<{ token_hash: string }>()).token_hash).toBe(
        tokenHash(r.token),
      );
    expect((await db('devices').where({ id: c }).first<{ token_hash: string }>()).token_hash).toBe(`h-${c}`);
  });
});

describe('tasks', () => {
  it('created for a registered action with TASK_REGISTERED to clients and to the robot; refused otherwise', async () => {
    const d = await connectedDevice(['PATROL']);
    const task = await ops.createTask(operator, d.id, { action: 'PATROL', payload: { lap: 1 } });
    expect(task.status).toBe('PENDING');
    const events = await eventsOf(d.id);
    expect(
      events
        .filter((e) => e.type === 'TASK_REGISTERED')
        .map((e) => e.channel)
        .sort(),
    ).toEqual(['client', 'device']);
    await expect(ops.createTask(operator, d.id, { action: 'FLY', payload: {} })).rejects.toMatchObject({
      status: 400,
    });
    expect(await db('tasks').where({ device_id: d.id })).toHaveLength(1);
    // A device gone is refused inside the operation, not only by the route.
    await expect(
      ops.createTask(operator, randomUUID(), { action: 'PATROL', payload: {} }),
    ).rejects.toMatchObject({
      status: 404,
      code: 'DEVICE_NOT_FOUND',
    });
  });

  it('reported by the executing device only; an operator may only abort', async () => {
    const d = await connectedDevice(['PATROL']);
    const other = await connectedDevice(['PATROL']);
    const task = await ops.createTask(operator, d.id, {
      action: 'PATROL',
      payload: {},
    });
    await expect(
      ops.reportTask({ kind: 'device', deviceId: other.id }, task.id, 'start'),
    ).rejects.toMatchObject({
      status: 403,
    });
    await expect(ops.reportTask({ kind: 'operator', ...operator }, task.id, 'start')).rejects.toMatchObject({
      status: 403,
    });
    expect((await ops.queries.task(task.id))!.status).toBe('PENDING');
    const started = await ops.reportTask({ kind: 'device', deviceId: d.id }, task.id, 'start');
    expect(started.status).toBe('IN_PROGRESS');
    await expect(ops.reportTask({ kind: 'device', deviceId: d.id }, task.id, 'start')).rejects.toMatchObject({
      code: 'INVALID_TASK_TRANSITION',
    });
    const aborted = await ops.reportTask({ kind: 'operator', ...operator }, task.id, 'abort');
    expect(aborted).toMatchObject({ status: 'ABORTED', reason: 'OPERATOR_ABORT' });
    expect(await typesOf(other.id)).toEqual(['DEVICE_CONNECTED']);
  });

  it("a session's abort takes the latest IN_PROGRESS task; a PENDING one and a newer session's are left", async () => {
    const d = await connectedDevice(['PATROL']);
    const pending = await ops.createTask(operator, d.id, { action: 'PATROL', payload: {} });
    const running = await ops.createTask(operator, d.id, { action: 'PATROL', payload: {} });
    await ops.reportTask({ kind: 'device', deviceId: d.id }, running.id, 'start');
    const ended = await endSession(d.id);
    const later = await ops.createTask(operator, d.id, { action: 'PATROL', payload: {} });
    await db.transaction((trx) => abortSessionTask(trx, ended.sessionId, d.id));
    expect((await ops.queries.task(running.id))!).toMatchObject({
      status: 'ABORTED',
      reason: 'DEVICE_DISCONNECTED',
    });
    expect((await ops.queries.task(pending.id))!.status).toBe('PENDING');
    expect((await ops.queries.task(later.id))!.status).toBe('PENDING');
    const aborted = (await eventsOf(d.id)).filter((e) => e.type === 'TASK_ABORTED');
    expect(aborted.map((e) => e.channel).sort()).toEqual(['client', 'device']);
  });
});

describe('recordings', () => {
  it("a session's automatic recordings: its VIDEO Tracks only, started once however often it runs", async () => {
    const d = await connectedDevice();
    await ops.startRecording.forSession(d.sessionId, d.id);
    await ops.startRecording.forSession(d.sessionId, d.id);
    const rows = await db('recordings').where({ session_id: d.sessionId });
    expect(rows.map((r: { track: string; state: string }) => [r.track, r.state])).toEqual([
      ['front', 'STARTED'],
    ]);
    const started = (await eventsOf(d.id)).filter((e) => e.type === 'RECORDING_STARTED');
    expect(started).toHaveLength(1);
    expect(started[0]!.body).toMatchObject({ policy: 'AUTOMATIC', sessionId: d.sessionId });
  });

  it('two runs at once start it once: TGDM is asked only with the recording row as its key', async () => {
    const d = await connectedDevice();
    const run = () => ops.startRecording.forSession(d.sessionId, d.id);
    await Promise.all([run(), run(), run()]);
    const rows = await db('recordings')
      .where({ session_id: d.sessionId })
      .select<{ state: string; tgdm_id: string }[]>('state', 'tgdm_id');
    expect(rows.map((r) => r.state)).toEqual(['STARTED']);
    const asked = [...tgdm.resources.values()].filter((r) => r.body.deviceId === d.id);
    expect(asked.map((r) => r.id)).toEqual([rows[0]!.tgdm_id]);
    expect((await typesOf(d.id)).filter((t) => t === 'RECORDING_STARTED')).toHaveLength(1);
  });

  it('none for a session already over', async () => {
    const d = await connectedDevice();
    await endSession(d.id);
    await ops.startRecording.forSession(d.sessionId, d.id);
    expect(await db('recordings').where({ device_id: d.id })).toEqual([]);
  });

  it("an ended session's stop waits while its start is pending, then stops the automatic one only", async () => {
    const d = await connectedDevice();
    const manual = await ops.startRecording.manual(d.id, 'front');
    // The session's recording started, but its connect effect is not ended yet when the session is.
    await ops.startRecording.forSession(d.sessionId, d.id);
    const ended = await endSession(d.id);
    expect(await ops.stopRecording.ofSession(ended.sessionId)).toBe('not-yet');
    await db('effects')
      .where({ session_id: d.sessionId, kind: 'start-recording' })
      .update({ status: 'DONE' });
    expect(await ops.stopRecording.ofSession(ended.sessionId)).toBe('done');
    const states = await db('recordings')
      .where({ device_id: d.id })
      .orderBy('policy')
      .select<{ policy: string; state: string }[]>('policy', 'state');
    expect(states).toEqual([
      { policy: 'AUTOMATIC', state: 'STOPPED' },
      { policy: 'MANUAL', state: 'STARTED' },
    ]);
    // The operator's stop raises the same event, with the session it belongs to (none).
    await ops.stopRecording.byId(manual.id);
    const stopped = (await eventsOf(d.id)).filter((e) => e.type === 'RECORDING_STOPPED').map((e) => e.body);
    expect(stopped.map((b) => b.sessionId)).toEqual([d.sessionId, null]);
    expect(Object.keys(stopped[0]!).sort()).toEqual(Object.keys(stopped[1]!).sort());
  });

  it('an operator recording TGDM refuses is FAILED and answered 502; a Track the device lacks, 400; no device, 404', async () => {
    const d = await connectedDevice();
    await expect(ops.startRecording.manual(d.id, 'rear')).rejects.toMatchObject({ status: 400 });
    await expect(ops.startRecording.manual(randomUUID(), 'front')).rejects.toMatchObject({
      status: 404,
      code: 'DEVICE_NOT_FOUND',
    });
    tgdm.faults.failCount = 1;
    tgdm.faults.failStatus = 400;
    await expect(ops.startRecording.manual(d.id, 'front')).rejects.toMatchObject({ code: 'TGDM_REJECTED' });
    tgdm.faults.failStatus = 503;
    const rows = await db('recordings').where({ device_id: d.id }).select<{ state: string }[]>('state');
    expect(rows).toEqual([{ state: 'FAILED' }]);
    expect(await typesOf(d.id)).toEqual(['DEVICE_CONNECTED']);
  });
});

describe('analysis streams', () => {
  it("an ended session's stop takes the streams started before it ended; a newer one is left", async () => {
    const d = await connectedDevice();
    const before = await ops.startAnalysisStream(d.id, 'front', 'detect');
    const ended = await endSession(d.id);
    await new Promise((r) => setTimeout(r, 5));
    const after = await ops.startAnalysisStream(d.id, 'front', 'detect');
    await expect(ops.startAnalysisStream(randomUUID(), 'front', 'detect')).rejects.toMatchObject({
      status: 404,
      code: 'DEVICE_NOT_FOUND',
    });
    await ops.stopAnalysisStreams.ofSession(ended.sessionId, d.id);
    expect((await db('analysis_streams').where({ id: before.id }).first<{ state: string }>()).state).toBe(
      'STOPPED',
    );
    expect((await db('analysis_streams').where({ id: after.id }).first<{ state: string }>()).state).toBe(
      'ACTIVE',
    );
    await ops.stopAnalysisStreams.byId(after.id);
    const stopped = (await eventsOf(d.id))
      .filter((e) => e.type === 'ANALYSIS_STREAM_STOPPED')
      .map((e) => e.body);
    expect(stopped.map((b) => b.sessionId)).toEqual([ended.sessionId, null]);
  });
});

describe('connecting and disconnecting', () => {
  it('a heartbeat connects a disconnected device once: one session, one DEVICE_CONNECTED', async () => {
    const [id] = await insertDevices(db, 1);
    const [first, second] = await Promise.all([connect()(id!, 4), connect()(id!, 4)]);
    expect([first, second].filter((c) => c !== null)).toHaveLength(1);
    expect(await db('connection_sessions').where({ device_id: id })).toHaveLength(1);
    expect(await typesOf(id!)).toEqual(['DEVICE_CONNECTED']);
  });

  it('a batch: silent devices end as MISSED_HEARTBEATS, one in maintenance as MAINTENANCE; a disconnected one is left', async () => {
    const [silent, resting] = [await connectedDevice(), await connectedDevice()];
    const [idle] = await insertDevices(db, 1);
    await ops.configure.deviceMaintenance(operator, resting.id, {
      until: new Date(Date.now() + 60_000),
      reason: 'battery swap',
      stopsRecordings: true,
    });
    const claimed = [silent.id, resting.id, idle!].map((deviceId) => ({
      deviceId,
      lastRound: 1,
      missedRounds: 3,
      lastSeenMs: Date.now() - 4000,
    }));
    const ended = await createDisconnectBatch({ db, metrics: createMetrics('test') })(claimed);
    expect(Object.fromEntries(ended.map((e) => [e.deviceId, e.effects]))).toEqual({
      [silent.id]: ['abort-task', 'stop-recording', 'stop-analysis-streams'],
      [resting.id]: ['stop-recording'],
    });
    const reasons = await db('connection_sessions')
      .whereIn('id', [silent.sessionId, resting.sessionId])
      .select<{ id: string; end_reason: string }[]>('id', 'end_reason');
    expect(Object.fromEntries(reasons.map((r) => [r.id, r.end_reason]))).toEqual({
      [silent.sessionId]: 'MISSED_HEARTBEATS',
      [resting.sessionId]: 'MAINTENANCE',
    });
    expect(await typesOf(idle!)).toEqual([]);
  });
});
