import { Queue, QueueEvents, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createStopRecording as stopRecordingJob } from '../../jobs/stop-recording';
import { SETTING_DEFAULTS } from '../../src/domain/settings';
import { effectJobId } from '../../src/domain/effects';
import type { Db } from '../../src/db/knex';
import { disconnectDevices } from '../../src/db/transitions';
import { effectProcessor } from '../../src/effects/run-effect';
import { createTgdmSimulator } from '../../src/integrations/simulator';
import { createTgdm } from '../../src/integrations/tgdm';
import { createLogger } from '../../src/logger';
import { createMetrics } from '../../src/metrics';
import { createConnectDevice } from '../../src/operations/connect-device';
import { createStartRecording } from '../../src/operations/start-recording';
import { createStopRecording } from '../../src/operations/stop-recording';
import { bullConnection } from '../../src/queues/connection';
import { waitFor } from '../../src/dev/processes';
import { createTestDatabase, uniquePrefix } from '../support/database';
import { insertDevices } from '../support/rows';

// An effect that cannot run yet goes back to BullMQ's delayed set without spending an attempt: with
// one attempt allowed, a stop waiting for its session's start still ends DONE.

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Db;
const tgdm = createTgdmSimulator();
const prefix = uniquePrefix();
const connection = bullConnection(inject('redisUrl'), 'worker');
const queue = new Queue('stop-recording', { connection, prefix });
const events = new QueueEvents('stop-recording', { connection, prefix });
let worker: Worker;
let tgdmUrl: string;

beforeAll(async () => {
  database = await createTestDatabase();
  db = database.db;
  tgdmUrl = await tgdm.start();
  const tgdmClient = createTgdm(tgdmUrl, 2000);
  const def = stopRecordingJob({ stopRecording: createStopRecording({ db, tgdm: tgdmClient }) });
  const processor = effectProcessor(def, {
    db,
    metrics: createMetrics('test'),
    logger: createLogger('silent'),
    notYetDelayMs: 200,
  });
  worker = new Worker('stop-recording', (job, token) => processor(job, token), { connection, prefix });
  await worker.waitUntilReady();
  await events.waitUntilReady();
});
afterAll(async () => {
  await worker.close();
  await events.close();
  await queue.close();
  await tgdm.stop();
  await database.drop();
});

const effect = async (sessionId: string, kind: string) =>
  db('effects').where({ session_id: sessionId, kind }).first<{ status: string; attempts: number }>();

describe('an effect that cannot run yet', () => {
  it('waits in the delayed set, spending no attempt, and runs once it can', async () => {
    const [id] = await insertDevices(db, 1, { tracks: [{ name: 'front', type: 'VIDEO' }] });
    const settings = async () => ({ ...SETTING_DEFAULTS, 'recording.automatic': true });
    const session = (await createConnectDevice({ db, settings })(id!, 1))!;
    const start = createStartRecording({ db, tgdm: createTgdm(tgdmUrl, 2000), mothUrl: 'ws://moth.test' });
    await start.forSession(session.sessionId, id!);
    const [ended] = await disconnectDevices(
      db,
      [{ deviceId: id!, beforeRound: null, missedRounds: 3, lastRoundHeard: 1, lastHeartbeatAt: null }],
      'MISSED_HEARTBEATS',
    );
    const jobId = effectJobId('stop-recording', ended!.sessionId);
    await queue.add('stop-recording', { sessionId: ended!.sessionId, deviceId: id! }, { jobId, attempts: 1 });

    // The session's start-recording effect is still PENDING: the stop goes back to wait, again and again.
    await new Promise((r) => setTimeout(r, 800));
    await waitFor(
      async () => (await queue.getJob(jobId))!.getState().then((st) => st === 'delayed'),
      5000,
      'delayed',
    );
    const job = (await queue.getJob(jobId))!;
    expect(job.attemptsMade).toBe(0);
    expect(job.attemptsStarted).toBeGreaterThanOrEqual(2);
    expect(await effect(ended!.sessionId, 'stop-recording')).toMatchObject({
      status: 'PENDING',
      attempts: 0,
    });
    expect(tgdm.stats.stops).toBe(0);

    await db('effects')
      .where({ session_id: session.sessionId, kind: 'start-recording' })
      .update({ status: 'DONE' });
    await job.waitUntilFinished(events, 5000);
    expect(await effect(ended!.sessionId, 'stop-recording')).toMatchObject({ status: 'DONE', attempts: 1 });
    expect(tgdm.stats.stops).toBe(1);
  });
});
