import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { startRedisCluster } from '../support/redis-cluster';
import { startTestSystem, type TestSystem } from '../support/system';

// The whole service (web, gateway, worker, BullMQ) on a real three-master Redis Cluster.
let cluster: Awaited<ReturnType<typeof startRedisCluster>>;
let s: TestSystem;
beforeAll(async () => {
  cluster = await startRedisCluster(join(inject('runDir'), `cluster-${randomBytes(3).toString('hex')}`));
  s = await startTestSystem({
    intervalSeconds: 1,
    maxMisses: 2,
    redisUrl: `redis://127.0.0.1:${cluster.ports[0]}`,
    env: { REDIS_CLUSTER: 'true', QUEUE_PREFIX: `{c${randomBytes(3).toString('hex')}}` },
  });
}, 60_000);
afterAll(async () => {
  await s?.close();
  await cluster?.stop();
});

describe('on a Redis Cluster (REDIS_CLUSTER=true)', () => {
  it('devices connect, a silent one is disconnected once, and the liveness state spreads over every master', async () => {
    const fleet = await Promise.all(Array.from({ length: 6 }, () => s.device()));
    for (const d of fleet) await s.waitStatus(d.id, 'CONNECTED', 10_000);
    const [silent, ...answering] = fleet;
    silent!.device.silent = true;
    await s.waitStatus(silent!.id, 'DISCONNECTED', 10_000);
    await new Promise((r) => setTimeout(r, 2000));
    for (const d of answering) expect(await s.status(d.id)).toBe('CONNECTED');
    const disconnected = await s.db('outbox').where({ type: 'DEVICE_DISCONNECTED' }).select('device_id');
    expect(disconnected.map((r: { device_id: string }) => r.device_id)).toEqual([silent!.id]);
    expect(cluster.keysPerNode().every((n) => n > 0)).toBe(true);
  });
});
