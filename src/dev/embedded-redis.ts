import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './ports';
import { killOrphan, waitFor } from './processes';
import type { RunningService } from './embedded-postgres';

export class MissingDependencyError extends Error {
  override name = 'MissingDependencyError';
}

function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Finds `redis-server`, installing Debian's package when it is missing and we are root with apt. */
export function ensureRedisServer(log: (line: string) => void): void {
  if (hasRedisServer()) return;
  const canApt =
    process.getuid?.() === 0 && spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
  if (canApt) {
    log('redis-server is missing: installing Debian package redis-server (apt-get)...');
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    spawnSync('apt-get', ['install', '-y', '-qq', 'redis-server'], { stdio: 'inherit' });
    if (hasRedisServer()) return;
  }
  throw new MissingDependencyError(
    'redis-server was not found and could not be installed.\n' +
      '  Install it (Debian/Ubuntu: `sudo apt-get install redis-server`, macOS: `brew install redis`),\n' +
      '  or point REDIS_URL at a running Redis 7 (e.g. REDIS_URL=redis://127.0.0.1:6379).',
  );
}

const redisArgs = (port: number, dir: string, pidFile: string) => [
  ...['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--pidfile', pidFile],
  ...['--appendonly', 'yes', '--appendfsync', 'everysec', '--save', ''],
  ...['--maxmemory-policy', 'noeviction', '--daemonize', 'no'],
];

/** Whether a Redis answers PING at `url`. */
async function answers(url: string): Promise<boolean> {
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {}); // refused while the server starts: expected
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false; // not up yet
  } finally {
    probe.disconnect();
  }
}

/**
 * Spawns a private `redis-server` in `dir` on a free port, configured as production needs it:
 * append-only file on (so queues and liveness survive a restart) and `noeviction`.
 */
export async function startEmbeddedRedis(
  dir: string,
  log: (line: string) => void = () => {},
  fixedPort?: number | string,
): Promise<RunningService> {
  ensureRedisServer(log);
  mkdirSync(dir, { recursive: true });
  const pidFile = join(dir, 'redis.pid');
  killOrphan(pidFile, /redis-server/);
  const port = fixedPort === undefined ? await freePort() : Number(fixedPort);
  const child = spawn('redis-server', redisArgs(port, dir, pidFile), { stdio: ['ignore', 'pipe', 'pipe'] });
  let exited = false;
  child.on('exit', () => (exited = true));
  child.stdout.on('data', (d: Buffer) => log(d.toString()));
  child.stderr.on('data', (d: Buffer) => log(d.toString()));
  const url = `redis://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (exited) throw new Error('redis-server exited during start-up');
      return answers(url);
    },
    15_000,
    'redis-server',
  );
  return {
    url,
    stop: async () => {
      if (exited) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await done;
    },
  };
}
