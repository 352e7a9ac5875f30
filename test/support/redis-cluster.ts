import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from 'ioredis';
import { freePort } from '../../src/dev/ports';
import { waitFor } from '../../src/dev/processes';

const ping = (port: number) =>
  spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG';

function startNode(dir: string, port: number): ChildProcess {
  const nodeDir = join(dir, String(port));
  mkdirSync(nodeDir, { recursive: true });
  return spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      nodeDir,
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      'nodes.conf',
      '--save',
      '',
      '--appendonly',
      'no',
    ],
    { stdio: 'ignore' },
  );
}

/**
 * A real local Redis Cluster of three masters (no replicas), as `redis-server --cluster-enabled yes`
 * and `redis-cli --cluster create` make it, in `dir`; stopped with `stop()`.
 */
export async function startRedisCluster(dir: string) {
  const ports: number[] = [];
  const children: ChildProcess[] = [];
  // A port found free can be taken by another test before redis-server binds it: a node that exits
  // at start is started again on another port.
  for (let node = 0; node < 3; node++) {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const child = startNode(dir, port);
      const exited = new Promise<boolean>((resolve) => child.once('exit', () => resolve(false)));
      const up = waitFor(() => ping(port), 10_000, `cluster node on ${port} up`).then(
        () => true,
        () => false,
      );
      if (await Promise.race([up, exited])) {
        ports.push(port);
        children.push(child);
        break;
      }
      child.kill('SIGKILL');
      if (attempt === 3) throw new Error('a cluster node would not start (ports taken?)');
    }
  }
  const created = spawnSync(
    'redis-cli',
    [
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ],
    { encoding: 'utf8' },
  );
  if (created.status !== 0)
    throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
  await waitFor(
    () =>
      ports.every((p) =>
        spawnSync('redis-cli', ['-p', String(p), 'cluster', 'info'], { encoding: 'utf8' }).stdout.includes(
          'cluster_state:ok',
        ),
      ),
    20_000,
    'cluster state ok',
  );
  return {
    ports,
    client: () => new Cluster(ports.map((port) => ({ host: '127.0.0.1', port }))),
    /** How many keys each master holds. */
    keysPerNode: () =>
      ports.map((p) =>
        Number(spawnSync('redis-cli', ['-p', String(p), 'dbsize'], { encoding: 'utf8' }).stdout.trim()),
      ),
    async stop() {
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) =>
              c.exitCode !== null ? resolve() : (c.once('exit', () => resolve()), c.kill('SIGTERM')),
            ),
        ),
      );
    },
  };
}
