import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { hashSecret } from '../../src/domain/credentials';
import { createDb, migrateLatest } from '../../src/db/knex';
import { storeSecretHash, writeSettings } from '../../src/db/settings';
import { startEmbeddedPostgres, type RunningService } from '../../src/dev/embedded-postgres';
import { stallPid, stallProcess } from '../../src/dev/processes';
import type { SettingValues } from '../../src/domain/settings';
import { startEmbeddedRedis } from '../../src/dev/embedded-redis';
import { SimulatedDevice } from '../../src/dev/simulated-device';
import { waitFor } from '../../src/dev/processes';
import {
  createMantisSimulator,
  createTgdmSimulator,
  type ContractSimulator,
} from '../../src/integrations/simulator';
import { createLogger } from '../../src/logger';
import { ThreadedMothHub as MothHub } from '../../src/moth/hub-thread';
import { createServices } from '../../workers/roles/services';
import { buildWebApp } from '../../workers/roles/web';
import { runTs, type Child } from '../../src/dev/child-process';

// A simulated fleet of healthy and dying devices while one fault at a time hits the system. Gateways
// and workers are separate processes (killed with SIGKILL where the scenario says so); Postgres,
// Redis and the Moth hub are this suite's own, so they can be restarted.
const HEALTHY = 12;
const DYING = 4;
const SECRET = 'chaos-registration-secret';
const ADMIN = 'chaos-admin-token-0123456789abcdef';

let dir: string;
let pgDir: string;
let pgPort: number;
let pg: RunningService;
let redisDir: string;
let redisPort: string;
let redis: RunningService;
let tgdm: ContractSimulator;
let mantis: ContractSimulator;
let tgdmUrl: string;
let mantisUrl: string;
const table: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rollcall-chaos-'));
  chmodSync(dir, 0o755);
  pgDir = join(dir, 'postgres');
  pg = await startEmbeddedPostgres(pgDir, 'postgres');
  pgPort = Number(new URL(pg.url).port);
  redisDir = join(dir, 'redis');
  redis = await startEmbeddedRedis(redisDir);
  redisPort = new URL(redis.url).port;
  tgdm = createTgdmSimulator();
  mantis = createMantisSimulator();
  tgdmUrl = await tgdm.start();
  mantisUrl = await mantis.start();
});

afterAll(async () => {
  process.stdout.write(
    `\n${['scenario'.padEnd(44), 'healthy lost', 'silent caught', 'effects once', 'events lost', 'hub skipped'].join(' | ')}\n${table.join('\n')}\n`,
  );
  await tgdm?.stop();
  await mantis?.stop();
  await redis?.stop();
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  hub: MothHub;
  readonly mothUrl: string;
  /** Moth paths (key included) of a healthy robot's bus and of the client channel. */
  robotBus(): string;
  readonly clientChannel: string;
  stopHub(): Promise<void>;
  startHub(): Promise<void>;
  startGateway(): Child;
  startWorker(): Child;
  gateways: Child[];
  workers: Child[];
}

async function scenario(
  name: string,
  options: { gateways?: number; workers?: number; settings?: Partial<SettingValues> },
  fault: (run: Run, silence: () => void) => Promise<void>,
) {
  const dbName = `chaos_${randomBytes(4).toString('hex')}`;
  const admin = createDb(pg.url, 1);
  await admin.raw(`CREATE DATABASE ${dbName}`);
  await admin.destroy();
  const dbUrl = new URL(pg.url);
  dbUrl.pathname = `/${dbName}`;
  const prefix = `c${randomBytes(3).toString('hex')}`;
  let hub = new MothHub();
  const mothUrl = await hub.start();
  const hubPort = hub.port;
  const env = {
    DATABASE_URL: dbUrl.toString(),
    REDIS_URL: redis.url,
    MOTH_URL: mothUrl,
    TGDM_URL: tgdmUrl,
    MANTIS_URL: mantisUrl,
    QUEUE_PREFIX: prefix,
    OPS_PORT: '0',
    LOG_LEVEL: 'warn',
    JOB_LOCK_MS: '2000',
    EFFECT_BACKOFF_MS: '300',
    EFFECT_ATTEMPTS: '40',
    SWEEP_INTERVAL_SECONDS: '2',
  };
  const config = {
    ...loadConfig({ ...env, NODE_ENV: 'test' }),
    DATABASE_URL: env.DATABASE_URL,
    REDIS_URL: env.REDIS_URL,
    MOTH_URL: env.MOTH_URL,
    TGDM_URL: env.TGDM_URL,
    MANTIS_URL: env.MANTIS_URL,
    ADMIN_TOKEN: ADMIN,
  };
  const db = createDb(env.DATABASE_URL, 4);
  await migrateLatest(db);
  await storeSecretHash(db, hashSecret(SECRET));
  await writeSettings(db, {
    'device.healthcheckIntervalSeconds': 1,
    'device.healthcheckMaxConsecutiveMisses': 2,
    'recording.automatic': true,
    ...options.settings,
  });
  const services = createServices(config, 'web', 4);
  const devices: { id: string; device: SimulatedDevice; dying: boolean; path: string }[] = [];
  const { app } = buildWebApp(config, services, createLogger('silent'));
  const http = app.callback();

  const run: Run = {
    get hub() {
      return hub;
    },
    mothUrl,
    robotBus: () => devices.find((d) => !d.dying)!.path,
    clientChannel: config.channels.clientEvents,
    async stopHub() {
      await hub.stop();
    },
    async startHub() {
      hub = new MothHub({ port: hubPort });
      await hub.start();
    },
    gateways: [],
    workers: [],
    startGateway() {
      const g = runTs('workers/gateway.ts', env);
      run.gateways.push(g);
      return g;
    },
    startWorker() {
      const w = runTs('workers/worker.ts', env);
      run.workers.push(w);
      return w;
    },
  };
  for (let i = 0; i < (options.workers ?? 1); i++) run.startWorker();
  for (let i = 0; i < (options.gateways ?? 1); i++) run.startGateway();

  // The client channel, as an operator UI would listen (reconnecting like one).
  const seen = new Set<string>();
  let listener: WebSocket | undefined;
  let closed = false;
  const listen = () => {
    if (closed) return;
    const ws = new WebSocket(`${mothUrl}${config.channels.clientEvents}`);
    ws.on('message', (d) => {
      try {
        seen.add((JSON.parse((d as Buffer).toString()) as { eventId: string }).eventId);
      } catch {
        /* not an event */
      }
    });
    ws.on('error', () => {});
    ws.on('close', () => setTimeout(listen, 200));
    listener = ws;
  };
  listen();

  try {
    for (let i = 0; i < HEALTHY + DYING; i++) {
      const res = await request(http)
        .post('/devices')
        .send({
          name: `${name.slice(0, 20)}-${i}`,
          secretKey: SECRET,
          tracks: [{ name: 'front', type: 'VIDEO' }],
          actions: ['PATROL'],
        });
      const reg = res.body as { id: string; token: string; channels: { deviceManagement: string } };
      const device = new SimulatedDevice({
        mothUrl,
        channelPath: reg.channels.deviceManagement,
        token: reg.token,
        replyDelayMs: () => 20 + Math.random() * 300,
      });
      await device.connect();
      devices.push({ id: reg.id, device, dying: i >= HEALTHY, path: reg.channels.deviceManagement });
    }
    const keepConnected = setInterval(() => {
      for (const d of devices) if (!d.device.connected && !d.dying) void d.device.connect().catch(() => {});
    }, 500);
    try {
      await waitFor(
        async () => (await db('devices').where({ status: 'CONNECTED' })).length === devices.length,
        30_000,
        'fleet connected',
      );
      for (const d of devices.filter((x) => x.dying)) {
        const task = (
          await request(http)
            .post(`/devices/${d.id}/tasks`)
            .set({ Authorization: `Bearer ${ADMIN}` })
            .send({ action: 'PATROL' })
        ).body as { id: string };
        expect(task.id).toBeDefined();
      }
      await waitFor(
        async () => (await db('recordings').where({ state: 'STARTED' })).length === devices.length,
        20_000,
        'recordings started',
      );
      const silence = () => {
        for (const d of devices.filter((x) => x.dying)) d.device.silent = true;
      };
      await fault(run, silence);
      for (const d of devices.filter((x) => x.dying)) d.device.silent = true;
      const dyingIds = devices.filter((d) => d.dying).map((d) => d.id);
      await waitFor(
        async () =>
          (
            await db('effects')
              .whereIn('device_id', dyingIds)
              .whereIn('kind', ['abort-task', 'stop-recording', 'stop-analysis-streams'])
              .where({ status: 'DONE' })
          ).length ===
          DYING * 3,
        90_000,
        'every effect of the dying devices done',
      );
      await sleep(3000); // a few more rounds: nothing else may happen
      await waitFor(
        async () => (await db('outbox').whereNull('published_at')).length === 0,
        30_000,
        'outbox drained',
      );
      await sleep(1500);
    } finally {
      clearInterval(keepConnected);
    }

    const healthyIds = devices.filter((d) => !d.dying).map((d) => d.id);
    const dyingIds = devices.filter((d) => d.dying).map((d) => d.id);
    const healthyLost = (
      await db('connection_sessions').whereIn('device_id', healthyIds).whereNotNull('ended_at')
    ).length;
    const endedOfDying: { device_id: string }[] = await db('connection_sessions')
      .whereIn('device_id', dyingIds)
      .whereNotNull('ended_at')
      .select('device_id');
    const caughtOnce = dyingIds.every((id) => endedOfDying.filter((e) => e.device_id === id).length === 1);
    const aborted = (
      await db('outbox').where({ type: 'TASK_ABORTED', channel: 'client' }).whereIn('device_id', dyingIds)
    ).length;
    const stopped = (await db('outbox').where({ type: 'RECORDING_STOPPED' }).whereIn('device_id', dyingIds))
      .length;
    const effectsOnce = aborted === DYING && stopped === DYING;
    const clientEvents = (await db('outbox').where({ channel: 'client' }).pluck('event_id')) as string[];
    const lost = clientEvents.filter((id) => !seen.has(id)).length;
    // Frames the (last) hub skipped because a reader fell behind: what Moth would have lost too.
    const skipped = (await run.hub.stats()).lostBehind;
    table.push(
      [
        name.padEnd(44),
        String(healthyLost).padStart(12),
        `${endedOfDying.length}/${DYING}${caughtOnce ? ' once' : ' !'}`.padStart(13),
        `${effectsOnce ? 'yes' : 'NO'} (${aborted}+${stopped})`.padStart(12),
        String(lost).padStart(11),
        String(skipped).padStart(11),
      ].join(' | '),
    );
    expect(healthyLost, 'healthy devices disconnected').toBe(0);
    expect(caughtOnce, 'every silent device disconnected exactly once').toBe(true);
    expect(effectsOnce, 'one TASK_ABORTED and one RECORDING_STOPPED per silent device').toBe(true);
    // Moth loses frames where its readers fall behind (the faithful hub skips them as it would, and
    // counts them): a client fetches what it missed from the feed. Every event must be there, numbered;
    // and no more may be missing on the channel than the hub skipped, or we marked published an event
    // that was never sent.
    const missing = clientEvents.filter((id) => !seen.has(id));
    const feed = await request(http)
      .get('/events')
      .query({ after: 0, limit: 1000 })
      .set({ Authorization: `Bearer ${ADMIN}` });
    const inFeed = new Set((feed.body as { events: { eventId: string }[] }).events.map((e) => e.eventId));
    expect(
      missing.filter((id) => !inFeed.has(id)),
      'events missed on the channel and absent from the feed',
    ).toEqual([]);
    expect(
      lost,
      `events never seen on the client channel, beyond the ${skipped} frames the hub skipped`,
    ).toBeLessThanOrEqual(skipped);
  } finally {
    closed = true;
    listener?.terminate();
    for (const d of devices) await d.device.close();
    await Promise.all([...run.gateways, ...run.workers].map((p) => p.stop()));
    await hub.stop();
    await services.close();
    await db.destroy();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('fault injection', () => {
  it('a worker killed with SIGKILL mid-evaluation', async () => {
    await scenario('worker SIGKILL mid-evaluation', { workers: 2 }, async (run, silence) => {
      silence();
      await sleep(2600); // the dying devices' threshold round is being evaluated about now
      run.workers[0]!.child.kill('SIGKILL');
      await sleep(500);
      run.startWorker();
    });
  });

  it('the gateway killed with SIGKILL, then started again', async () => {
    await scenario('gateway SIGKILL', {}, async (run, silence) => {
      await sleep(1500);
      run.gateways[0]!.child.kill('SIGKILL');
      silence();
      await sleep(2000);
      run.startGateway();
    });
  });

  it('Redis restarted (append-only file on)', async () => {
    await scenario('Redis restart', {}, async (_run, silence) => {
      silence();
      await sleep(1500);
      await redis.stop();
      await sleep(1500);
      redis = await startEmbeddedRedis(redisDir, () => {}, redisPort);
    });
  });

  it('Postgres restarted', async () => {
    await scenario('Postgres restart', {}, async (_run, silence) => {
      silence();
      await sleep(1500);
      await pg.stop();
      await sleep(1500);
      pg = await startEmbeddedPostgres(pgDir, 'postgres', () => {}, pgPort);
    });
  });

  it('Postgres stalled (SIGSTOP) for three intervals', async () => {
    // Issuing a round reads the settings from Postgres, so a stall holds the rounds themselves: no
    // robot may be counted as missing one, even with the mass-silence brake off (it would otherwise
    // hold any round every robot missed), and the silent ones are still caught once.
    const settings = { 'device.massSilenceMinDevices': 10_000_000 };
    await scenario('Postgres stalled 3 intervals', { settings }, async (_run, silence) => {
      silence();
      await sleep(1000);
      await stallProcess(join(pgDir, 'data', 'postmaster.pid'), 3000);
    });
  });

  it('a gateway starved of CPU: stopped 700 ms of every second for 8 s', async () => {
    // Its robots answer, but their answers wait unread in its sockets past the rounds' close: the
    // gateway must blame itself (its rounds void for its shards), never its robots. The brake is off,
    // so it cannot hide a round every robot of the shard missed.
    const settings = { 'device.massSilenceMinDevices': 10_000_000 };
    await scenario('gateway starved 8 s', { gateways: 2, settings }, async (run, silence) => {
      silence();
      const pid = run.gateways[0]!.child.pid!;
      for (let i = 0; i < 8; i++) {
        await stallPid(pid, 700);
        await sleep(300);
      }
    });
  });

  it('the Moth hub stopped for three intervals', async () => {
    await scenario('Moth hub down 3 intervals', {}, async (run, silence) => {
      silence();
      await sleep(1000);
      await run.stopHub();
      await sleep(3000);
      await run.startHub();
    });
  });

  it('a rogue member on a robot bus and on the client channel through a detection window', async () => {
    await scenario('rogue member on a bus and the channel', {}, async (run, silence) => {
      const rogues = [run.robotBus(), run.clientChannel].map(
        (path) => new WebSocket(`${run.mothUrl}${path}`),
      );
      await Promise.all(rogues.map((ws) => new Promise((resolve) => ws.once('open', resolve))));
      // A 16 MiB text frame (Moth replays it to every later joiner), then floods of garbage and 1 MiB frames.
      for (const ws of rogues) ws.send('x'.repeat(16 * 1024 * 1024 - 64));
      const flood = setInterval(() => {
        for (const ws of rogues) {
          for (let i = 0; i < 20; i++) ws.send(randomBytes(64), { binary: true });
          ws.send(Buffer.alloc(1024 * 1024, 0x7b), { binary: true });
        }
      }, 200);
      try {
        await sleep(2000);
        silence();
        await sleep(8000);
      } finally {
        clearInterval(flood);
        for (const ws of rogues) ws.terminate();
      }
    });
  });

  it('TGDM failing for 30 s', async () => {
    await scenario('TGDM failing 30 s', {}, async (_run, silence) => {
      tgdm.failFor(30_000, 503);
      silence();
      await sleep(5000);
    });
  });

  it('three workers and two gateways at once', async () => {
    await scenario('3 workers + 2 gateways', { workers: 3, gateways: 2 }, async (_run, silence) => {
      await sleep(1000);
      silence();
    });
  });
});
