import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { runTs, stopChildren } from '../../src/dev/child-process';
import { SimulatedDevice } from '../../src/dev/simulated-device';
import { createMantisSimulator, createTgdmSimulator } from '../../src/integrations/simulator';
import { ThreadedMothHub as MothHub } from '../../src/moth/hub-thread';
import { waitFor } from '../support/system';

// Each Procfile role started on its own, as a separate process, against services started apart.
const hub = new MothHub();
const tgdm = createTgdmSimulator();
const mantis = createMantisSimulator();
let env: Record<string, string> & { MOTH_URL: string; DATABASE_URL: string };
let dbName: string;

async function adminQuery(sql: string) {
  const url = new URL(inject('templateDbUrl'));
  url.pathname = '/postgres';
  const c = new pg.Client({ connectionString: url.toString() });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  dbName = `roles_${randomBytes(4).toString('hex')}`;
  await adminQuery(`CREATE DATABASE ${dbName}`);
  const dbUrl = new URL(inject('templateDbUrl'));
  dbUrl.pathname = `/${dbName}`;
  env = {
    DATABASE_URL: dbUrl.toString(),
    REDIS_URL: inject('redisUrl'),
    MOTH_URL: await hub.start(),
    TGDM_URL: await tgdm.start(),
    MANTIS_URL: await mantis.start(),
    QUEUE_PREFIX: `r${randomBytes(3).toString('hex')}`,
    ADMIN_TOKEN: 'roles-admin-token-0123456789abcdef',
    DEVICE_SECRET_KEY: 'roles-secret-0123456789',
    PORT: '0',
    OPS_PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    JOB_LOCK_MS: '2000',
  };
});
afterAll(async () => {
  await stopChildren();
  await hub.stop();
  await tgdm.stop();
  await mantis.stop();
  await adminQuery(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
});

const run = (script: string, extra: Record<string, string> = {}) => runTs(script, { ...env, ...extra });

describe('Procfile roles on their own', () => {
  it('release migrates an empty database', () => {
    const res = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'node_modules/knex/bin/cli.js', '--knexfile', 'knexfile.ts', 'migrate:latest'],
      {
        env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: env.DATABASE_URL },
        encoding: 'utf8',
      },
    );
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/Batch 1 run: \d+ migrations/);
  });

  it('a role missing its configuration says which variables to set', async () => {
    const r = run('workers/gateway.ts', { MOTH_URL: '', DATABASE_URL: '' });
    expect((await r.exited).code).toBe(1);
    expect(r.stderr()).toMatch(/DATABASE_URL, MOTH_URL/);
  });

  it('web, gateway and worker run a device through connect and disconnect, and drain on SIGTERM within 10 s', async () => {
    const worker = run('workers/worker.ts');
    const gateway = run('workers/gateway.ts');
    const web = run('workers/web.ts');
    await waitFor(
      () =>
        Boolean(
          web.logged('web listening') && gateway.logged('gateway started') && worker.logged('worker started'),
        ),
      30_000,
      'roles up',
    );
    const api = `http://127.0.0.1:${String(web.logged('web listening')!.port)}`;
    const admin = { authorization: `Bearer ${env.ADMIN_TOKEN}`, 'content-type': 'application/json' };
    await fetch(`${api}/server-settings`, {
      method: 'PATCH',
      headers: admin,
      body: JSON.stringify({
        device: {
          healthcheckIntervalSeconds: 1,
          healthcheckMaxConsecutiveMisses: 1,
          secretKey: env.DEVICE_SECRET_KEY,
        },
      }),
    });
    const reg = (await (
      await fetch(`${api}/devices`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          name: 'standalone',
          secretKey: env.DEVICE_SECRET_KEY,
          tracks: [{ name: 'cam', type: 'VIDEO' }],
          actions: ['GO'],
        }),
      })
    ).json()) as { id: string; token: string; channels: { deviceManagement: string } };
    const device = new SimulatedDevice({
      mothUrl: env.MOTH_URL,
      channelPath: reg.channels.deviceManagement,
      token: reg.token,
    });
    await device.connect();
    const status = async () =>
      ((await (await fetch(`${api}/devices/${reg.id}`, { headers: admin })).json()) as { status: string })
        .status;
    await waitFor(async () => (await status()) === 'CONNECTED', 10_000, 'connected through the gateway');
    for (const ops of [
      gateway.logged('gateway started')!.opsPort,
      worker.logged('worker started')!.opsPort,
    ]) {
      expect((await fetch(`http://127.0.0.1:${String(ops)}/readyz`)).status).toBe(200);
      expect(await (await fetch(`http://127.0.0.1:${String(ops)}/metrics`)).text()).toContain('rollcall_');
    }
    // The automatic recording started at connect; its stop will be in flight when the worker is told
    // to stop, TGDM being slow: a drain waits for it, a force-close would leave it unfinished.
    await waitFor(() => tgdm.stats.starts >= 1, 10_000, 'recording started');
    tgdm.faults.latencyMs = 2500;
    const requestsBefore = tgdm.stats.requests;
    device.silent = true;
    await waitFor(async () => (await status()) === 'DISCONNECTED', 10_000, 'disconnected by the worker');
    await waitFor(() => tgdm.stats.requests > requestsBefore, 10_000, 'the stop request in flight');
    await device.close();

    for (const r of [web, gateway, worker]) r.signal('SIGTERM');
    for (const r of [web, gateway, worker]) {
      const { code, ms } = await r.exited;
      expect(code).toBe(0);
      expect(ms).toBeLessThan(10_000);
    }
    tgdm.faults.latencyMs = 0;
    expect(worker.logged('draining')).toBeDefined();
    const db = new pg.Client({ connectionString: env.DATABASE_URL });
    await db.connect();
    try {
      const { rows } = await db.query<{ status: string }>(
        `SELECT status FROM effects WHERE kind = 'stop-recording'`,
      );
      expect(rows.map((r) => r.status)).toEqual(['DONE']);
    } finally {
      await db.end();
    }
  }, 60_000);
});
