import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/dev/ports';
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

describe('npm start', () => {
  it('on SIGTERM drains every role before it stops its Postgres and Redis, then exits 0', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', 'workers/all-in-one.ts'], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DATA_DIR: dataDir,
        PORT: String(port),
        MOTH_PORT: String(await freePort()),
        OPS_PORT: '0',
        ADMIN_TOKEN: 'start-admin-token-0123456789',
        DEVICE_SECRET_KEY: 'start-secret-0123456789',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitFor(() => output.includes('rollcall is up'), 90_000, 'the banner');
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

      const stopping = output.length;
      const signalled = Date.now();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(10_000);
      // Postgres stayed up until every role had drained: nothing lost its connection on the way out.
      const shutdown = output.slice(stopping);
      expect(shutdown).not.toMatch(/Connection ended unexpectedly|Acquire connection error|"level":50/);
      expect(processesUsing(dataDir)).toEqual([]);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 120_000);
});
