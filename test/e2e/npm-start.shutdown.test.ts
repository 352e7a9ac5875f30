import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createDb } from '../../src/db/knex';
import { runTs } from '../../src/dev/child-process';
import { startEmbeddedPostgres } from '../../src/dev/embedded-postgres';
import { freePort } from '../../src/dev/ports';
import { SimulatedDevice } from '../../src/dev/simulated-device';
import { waitFor } from '../support/system';

const dataDir = mkdtempSync(join(tmpdir(), 'rollcall-start-'));
chmodSync(dataDir, 0o755); // embedded Postgres runs as its own user when we are root
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

/** Processes whose command line names this data folder (the Postgres and Redis `npm start` ran). */
function processesUsing(dir: string): string[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .flatMap((p) => {
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ');
        return cmd.includes(dir) ? [cmd] : [];
      } catch {
        return [];
      }
    });
}

/** Every process below `pid`, by parent links in /proc. */
function descendants(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      // "pid (comm) state ppid ...": comm may hold spaces, so read after its closing parenthesis.
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      parents.set(Number(p), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const below = (of: number): number[] =>
    [...parents].filter(([, parent]) => parent === of).flatMap(([child]) => [child, ...below(child)]);
  return below(pid);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('npm start', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    'stops everything it started when only its PID gets %s, as a supervisor sends it',
    async (signal) => {
      const dir = mkdtempSync(join(tmpdir(), 'rollcall-npm-start-'));
      chmodSync(dir, 0o755);
      const npm = spawn('npm', ['start'], {
        env: {
          ...process.env,
          DATA_DIR: dir,
          PORT: String(await freePort()),
          MOTH_PORT: String(await freePort()),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      npm.stdout.on('data', (d: Buffer) => (out += d.toString()));
      npm.stderr.on('data', (d: Buffer) => (out += d.toString()));
      let started: number[] = [];
      try {
        // Gone before its banner (a port taken meanwhile, say), or silent: said with what it printed.
        await waitFor(
          () => {
            if (npm.exitCode !== null) throw new Error(`npm start exited ${npm.exitCode}`);
            return out.includes('rollcall is up');
          },
          90_000,
          'the banner',
        ).catch((err: Error) => {
          throw new Error(`${err.message}; it printed:\n${out.slice(-3000)}`);
        });
        started = descendants(npm.pid!);
        // The service, its Postgres and its Redis, at least.
        expect(started.length).toBeGreaterThanOrEqual(3);
        expect(processesUsing(dir).length).toBeGreaterThan(0);
        const at = Date.now();
        process.kill(npm.pid!, signal);
        await waitFor(() => [npm.pid!, ...started].every((p) => !alive(p)), 10_000, 'every process gone');
        expect(Date.now() - at).toBeLessThan(10_000);
        expect(processesUsing(dir)).toEqual([]);
        expect(out).toMatch(/"msg":"stopping"/);
      } finally {
        // What a failed stop left behind (orphans no longer descend from npm).
        for (const p of [npm.pid!, ...descendants(npm.pid!), ...started])
          if (alive(p)) process.kill(p, 'SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    },
    120_000,
  );

  it('on SIGTERM drains every role (an effect in flight finishes) before it stops its Postgres and Redis, then exits 0', async () => {
    const port = await freePort();
    const mothPort = await freePort();
    const child = runTs('workers/all-in-one.ts', {
      DATA_DIR: dataDir,
      PORT: String(port),
      MOTH_PORT: String(mothPort),
      OPS_PORT: '0',
      ADMIN_TOKEN: 'start-admin-token-0123456789abcdef',
      DEVICE_SECRET_KEY: 'start-secret-0123456789',
      LOG_LEVEL: 'info',
    });
    const output = () => `${child.lines.join('\n')}\n${child.stderr()}`;
    try {
      await waitFor(() => output().includes('rollcall is up'), 90_000, 'the banner');
      const res = await fetch(`http://127.0.0.1:${port}/devices`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          name: 'start-1',
          secretKey: 'start-secret-0123456789',
          tracks: [{ name: 'front', type: 'VIDEO' }],
          actions: ['PATROL'],
        }),
      });
      expect(res.status).toBe(201);
      expect(processesUsing(dataDir).length).toBeGreaterThan(0);

      // Work in flight at SIGTERM: a device connects (its automatic recording starts), goes silent,
      // and its recording's stop waits in a slow TGDM when the signal comes. A drain lets it finish.
      const reg = (await res.json()) as { id: string; token: string; channels: { deviceManagement: string } };
      const admin = {
        authorization: 'Bearer start-admin-token-0123456789abcdef',
        'content-type': 'application/json',
      };
      await fetch(`http://127.0.0.1:${port}/server-settings`, {
        method: 'PATCH',
        headers: admin,
        body: JSON.stringify({
          device: { healthcheckIntervalSeconds: 1, healthcheckMaxConsecutiveMisses: 1 },
        }),
      });
      const device = new SimulatedDevice({
        mothUrl: `ws://127.0.0.1:${mothPort}`,
        channelPath: reg.channels.deviceManagement,
        token: reg.token,
      });
      await device.connect();
      const status = async () =>
        (
          (await (await fetch(`http://127.0.0.1:${port}/devices/${reg.id}`, { headers: admin })).json()) as {
            status: string;
          }
        ).status;
      await waitFor(async () => (await status()) === 'CONNECTED', 20_000, 'connected');
      const tgdm = /TGDM\s+(http:\/\/\S+)/.exec(output())![1]!;
      await waitFor(
        async () => ((await (await fetch(`${tgdm}/recordings`)).json()) as unknown[]).length === 1,
        10_000,
        'recording started',
      );
      await fetch(`${tgdm}/_sim/faults`, { method: 'POST', body: JSON.stringify({ latencyMs: 2500 }) });
      device.silent = true;
      await waitFor(async () => (await status()) === 'DISCONNECTED', 10_000, 'disconnected');
      await new Promise((r) => setTimeout(r, 1000)); // the stop request is now waiting in TGDM
      await device.close();

      const stopping = child.lines.length;
      child.signal('SIGTERM');
      const { code, ms } = await child.exited;
      expect(code).toBe(0);
      expect(ms).toBeLessThan(10_000);
      // Postgres stayed up until every role had drained: nothing lost its connection on the way out.
      const shutdown = `${child.lines.slice(stopping).join('\n')}\n${child.stderr()}`;
      expect(shutdown).not.toMatch(/Connection ended unexpectedly|Acquire connection error|"level":50/);
      expect(processesUsing(dataDir)).toEqual([]);
      // The effect in flight finished before Postgres stopped.
      const pg = await startEmbeddedPostgres(join(dataDir, 'postgres'), 'rollcall');
      const db = createDb(pg.url, 1);
      try {
        const rows = await db('effects')
          .where({ kind: 'stop-recording' })
          .select<{ status: string }[]>('status');
        expect(rows.map((r) => r.status)).toEqual(['DONE']);
      } finally {
        await db.destroy();
        await pg.stop();
      }
    } finally {
      if (child.child.exitCode === null) child.signal('SIGKILL');
    }
  }, 120_000);
});
