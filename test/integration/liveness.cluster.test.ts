import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { redisKeys } from '../../src/redis/keys';
import { staleAmong } from '../../src/domain/policy';
import { createLiveness } from '../../src/redis/liveness';
import type { Judge } from '../../src/redis/liveness';
import { createRounds } from '../../src/redis/rounds';
import { createShardLeases } from '../../src/redis/shard-leases';
import { startRedisCluster } from '../support/redis-cluster';

/** Every device allowed the same `max` valid rounds of silence in round n. */
const uniform =
  (n: number, max: number): Judge =>
  (pages) =>
    Promise.resolve(pages.map((p) => staleAmong(n, p.candidates, p.validRounds, () => max)));

const SHARDS = 64;
let cluster: Awaited<ReturnType<typeof startRedisCluster>>;
let client: Cluster;
beforeAll(async () => {
  cluster = await startRedisCluster(join(inject('runDir'), `cluster-${randomBytes(3).toString('hex')}`));
  client = cluster.client();
}, 60_000);
afterAll(async () => {
  client?.disconnect();
  await cluster?.stop();
});

describe('the liveness state on a real Redis Cluster (three masters)', () => {
  it('spreads over every master by shard, and rounds, claims and leases work there', async () => {
    // The fleet-wide keys in one slot ({tag} prefix, as BullMQ needs on a cluster); shards in their own.
    const keys = redisKeys(`{rc${randomBytes(3).toString('hex')}}`);
    const liveness = createLiveness(client, keys, SHARDS);
    const rounds = createRounds(client, keys, SHARDS);
    const leases = createShardLeases(client, keys);
    const devices = Array.from({ length: 2000 }, (_, i) => `device-${i}`);
    await liveness.cacheTokens(devices.map((d) => ({ tokenHash: `h-${d}`, deviceId: d })));
    const all = Array.from({ length: SHARDS }, (_, s) => s);

    const t = Date.now();
    for (let n = 1; n <= 4; n++) {
      expect(await rounds.advance(`job-${n}`, t + n * 1000, t + n * 1000, 800, 1)).toEqual({
        round: n,
        fresh: true,
      });
      await rounds.markOpened(n, 'gw-a', all, t + n * 1000);
      const answering = n === 1 ? devices : devices.slice(30);
      const heard = await liveness.recordHeartbeats(
        answering.map((d) => ({ tokenHash: `h-${d}`, deviceId: d, heardRound: n })),
      );
      expect(heard.heard).toBe(answering.length);
      expect(heard.fresh).toHaveLength(n === 1 ? devices.length : 0);
      await rounds.close(n, all);
    }
    expect((await rounds.openedBy(4)).size).toBe(SHARDS);
    expect(await liveness.silenceOf(4)).toEqual({ connected: 2000, missed: 30 });
    // Heard in round 1 only: missed 2, 3 and 4, more than max 2.
    const claimed = await liveness.claimStale(4, 2, 10_000, uniform(4, 2));
    expect(claimed.map((c) => c.deviceId).sort()).toEqual(devices.slice(0, 30).sort());
    await liveness.releaseClaims(
      4,
      claimed.map((c) => c.deviceId),
    );
    expect(await liveness.claimStale(4, 2, 10_000, uniform(4, 2))).toEqual([]);
    await liveness.forgetToken('device-40', 'h-device-40');
    expect(
      (await liveness.recordHeartbeats([{ tokenHash: 'h-device-40', deviceId: 'device-40', heardRound: 5 }]))
        .revoked,
    ).toBe(1);
    expect(await leases.renew('gw-a', [{ shard: 3, since: t }], [])).toEqual(new Set([3]));
    expect(await leases.renew('gw-b', [{ shard: 3, since: t }], [])).toEqual(new Set());

    // Every master holds part of the state: the shards spread over the cluster.
    const perNode = cluster.keysPerNode();
    expect(perNode.every((n) => n > 0)).toBe(true);
  });
});
