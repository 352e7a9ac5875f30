import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CAUGHT_UP_MARGIN_MS } from '../../src/domain/rounds';
import { newToken, tokenHash } from '../../src/domain/credentials';
import type { DeviceBuses } from '../../src/gateway/device-buses';
import { createHeartbeatIngest } from '../../src/gateway/heartbeat-ingest';
import { createSelfWatch } from '../../src/gateway/self-watch';
import { createShardOwnership } from '../../src/gateway/shard-ownership';
import { createLogger } from '../../src/logger';
import { createMetrics, type Metrics } from '../../src/metrics';
import { createConfirmRound } from '../../src/operations/confirm-round';
import { createRedis, type RedisClient } from '../../src/redis/connection';
import { redisKeys } from '../../src/redis/keys';
import { createLiveness, type HeartbeatInput } from '../../src/redis/liveness';
import { createGatewayRegistry, createRounds } from '../../src/redis/rounds';
import { createShardLeases } from '../../src/redis/shard-leases';
import { uniquePrefix } from '../support/database';

// A gateway that falls behind its buses blames itself: its rounds are void, never a miss for its
// robots. It watches itself (its event loop, its reading, its writes) and vouches, at each lease
// renewal, up to when it has read and written its buses; a round's evaluation confirms the shards
// against that before anyone can miss the round.

const SHARDS = 2;
let redis: RedisClient;
beforeAll(() => {
  redis = createRedis(inject('redisUrl'), 'worker');
});
afterAll(() => redis.disconnect());

const suspicions = async (metrics: Metrics, reason: string) =>
  (await metrics.selfSuspicions.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;

/** Round 7 issued 2 s ago and closed now, valid at its close for both shards, each held by its own gateway. */
async function closedRound() {
  const keys = redisKeys(uniquePrefix());
  const rounds = createRounds(redis, keys, SHARDS);
  const leases = createShardLeases(redis, keys);
  const issuedAt = Date.now() - 2000;
  await redis.hset(keys.rounds.meta(7), 'issuedAt', String(issuedAt), 'interval', '2', 'broadcast', '1');
  await rounds.markOpened(7, 'gw-a', [0], issuedAt + 10);
  await rounds.markOpened(7, 'gw-b', [1], issuedAt + 10);
  const closedAt = Date.now();
  const vouch = (gateway: string, shard: number, caughtUp: number | null) =>
    leases.renew(gateway, [{ shard, since: issuedAt - 60_000 }], [], Date.now(), caughtUp);
  // Both vouched before the close, as at any renewal of the round.
  await vouch('gw-a', 0, closedAt - 900);
  await vouch('gw-b', 1, closedAt - 900);
  await rounds.close(7, [0, 1], closedAt);
  const metrics = createMetrics('test');
  const confirm = createConfirmRound({
    rounds,
    leases,
    shards: SHARDS,
    metrics,
    logger: createLogger('silent'),
    waitMs: 600,
  });
  const validFor = async (shard: number) =>
    (await redis.zscore(keys.liveness.shard(shard).validRounds, '7')) !== null;
  return { rounds, confirm, vouch, closedAt, metrics, validFor };
}

describe('a round confirmed against its gateways before it counts', () => {
  it('stays valid where the gateway vouches past the close, and is void where it cannot', async () => {
    const r = await closedRound();
    // gw-a catches up 150 ms later; gw-b is starved and vouches for nothing past the close.
    setTimeout(() => void r.vouch('gw-a', 0, r.closedAt + 20), 150);
    setTimeout(() => void r.vouch('gw-b', 1, null), 150);
    const started = Date.now();
    const meta = (await r.rounds.meta(7))!;
    expect(await r.confirm(meta)).toEqual([0]);
    // It waited for gw-b, up to the bound, not past it.
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    expect(Date.now() - r.closedAt).toBeLessThan(CAUGHT_UP_MARGIN_MS + 600 + 500);
    expect(await r.validFor(0)).toBe(true);
    expect(await r.validFor(1)).toBe(false);
    expect((await r.rounds.meta(7))!.validShards).toEqual([0]);
    expect(await r.metrics.shardRoundsVoidedLate.get()).toMatchObject({ values: [{ value: 1 }] });
  });

  it('answers as soon as every gateway has vouched', async () => {
    const r = await closedRound();
    setTimeout(() => void r.vouch('gw-a', 0, r.closedAt + 5), 50);
    setTimeout(() => void r.vouch('gw-b', 1, r.closedAt + 5), 100);
    const started = Date.now();
    expect(await r.confirm((await r.rounds.meta(7))!)).toEqual([0, 1]);
    expect(Date.now() - started).toBeLessThan(400);
    expect((await r.rounds.meta(7))!.outcome).toBe('valid');
  });

  it('is void for every shard when no gateway kept up', async () => {
    const r = await closedRound();
    expect(await r.confirm((await r.rounds.meta(7))!)).toEqual([]);
    expect((await r.rounds.meta(7))!.outcome).toBe('void');
    expect([await r.validFor(0), await r.validFor(1)]).toEqual([false, false]);
  });
});

describe("a gateway's watch over itself", () => {
  it('suspects itself when its event loop runs late, and no round opened before then counts', async () => {
    const metrics = createMetrics('test');
    const watch = createSelfWatch({ metrics, logger: createLogger('silent'), flush: async () => {} });
    watch.start();
    try {
      await new Promise((r) => setTimeout(r, 120));
      expect(await suspicions(metrics, 'loop')).toBe(0);
      // A starved process: the loop held for longer than the margin.
      const busyUntil = Date.now() + CAUGHT_UP_MARGIN_MS + 200;
      while (Date.now() < busyUntil);
      const resumed = Date.now();
      await new Promise((r) => setTimeout(r, 120));
      expect(await suspicions(metrics, 'loop')).toBe(1);
      expect(watch.brokenAt()).toBeGreaterThanOrEqual(resumed);
      // Vouching covers only what the loop read on time since.
      expect(await watch.vouch()).toBeGreaterThanOrEqual(resumed - CAUGHT_UP_MARGIN_MS);
    } finally {
      watch.stop();
    }
  });

  it('does not vouch while reading is paused, nor when its writes are slower than the bound', async () => {
    const metrics = createMetrics('test');
    let writing: Promise<void> = Promise.resolve();
    const watch = createSelfWatch({
      metrics,
      logger: createLogger('silent'),
      flush: () => writing,
      writeBoundMs: 200,
    });
    watch.behind(true);
    expect(await watch.vouch()).toBeNull();
    expect(watch.brokenAt()).toBeGreaterThanOrEqual(Date.now() - 5);
    watch.behind(false);
    const resumedAt = watch.brokenAt();
    expect(await suspicions(metrics, 'backpressure')).toBe(2);
    expect(await watch.vouch()).not.toBeNull();
    writing = new Promise(() => {});
    expect(await watch.vouch()).toBeNull();
    expect(await suspicions(metrics, 'write')).toBe(1);
    expect(watch.brokenAt()).toBeGreaterThan(resumedAt);
  });
});

/**
 * One gateway holding shard 0 (of one), wired as the gateway role wires it: its ingest's
 * backpressure tells its watch, the watch feeds its lease renewals. Heartbeat writes wait while
 * `gate.closed`.
 */
async function gatewayOfOneShard() {
  const keys = redisKeys(uniquePrefix());
  const metrics = createMetrics('test');
  const logger = createLogger('silent');
  const rounds = createRounds(redis, keys, 1);
  const leases = createShardLeases(redis, keys);
  const liveness = createLiveness(redis, keys, 1);
  let open: () => void = () => {};
  let gate: Promise<void> = Promise.resolve();
  const round = { n: 5 };
  const ingest = createHeartbeatIngest({
    liveness: {
      ...liveness,
      recordHeartbeats: async (batch: readonly HeartbeatInput[]) => {
        await gate;
        return liveness.recordHeartbeats(batch);
      },
    },
    metrics,
    logger,
    openRound: () => round.n,
    lookupTokens: async () => [],
    connect: () => {},
    maxBatch: 1,
    onBackpressure: (behind) => watch.behind(behind),
  });
  const watch = createSelfWatch({ metrics, logger, flush: () => ingest.flush(), writeBoundMs: 300 });
  const heldSince = Date.now() - 60_000;
  const buses = {
    held: () => [0],
    heldSince: () => new Map([[0, heldSince]]),
    hold: () => {},
    sharedUsers: () => 0,
    openSessionCount: () => 1,
    sessionCount: () => 1,
  } as unknown as DeviceBuses;
  const ownership = createShardOwnership({
    id: 'gw',
    shards: 1,
    sharedBus: false,
    gateways: createGatewayRegistry(redis, keys),
    leases,
    buses,
    metrics,
    logger,
    brokenAt: watch.brokenAt,
    broke: () => watch.suspect('failure'),
    vouch: watch.vouch,
    reportBusLosses: async () => {},
  });
  const confirm = createConfirmRound({ rounds, leases, shards: 1, metrics, logger, waitMs: 1000 });
  const devices = await Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      const token = newToken();
      await liveness.cacheTokens([{ tokenHash: tokenHash(token), deviceId: `d${i}` }]);
      return { id: `d${i}`, frame: Buffer.from(JSON.stringify({ type: 'HEARTBEAT', token })) };
    }),
  );
  /** Round n: opened now, `answering` robots answering (more than 32 at once pile up while writes wait). */
  async function playRound(n: number, answering: number) {
    round.n = n;
    const issuedAt = Date.now();
    await redis.hset(keys.rounds.meta(n), 'issuedAt', String(issuedAt), 'interval', '1', 'broadcast', '1');
    await rounds.markOpened(n, 'gw', [0], issuedAt);
    for (const d of devices.slice(0, answering)) ingest.push(d.frame, d.id);
  }
  return {
    ownership,
    rounds,
    metrics,
    playRound,
    async closeAndConfirm(n: number) {
      await rounds.close(n, [0], Date.now());
      setTimeout(() => void ownership.renew(), CAUGHT_UP_MARGIN_MS + 20);
      return confirm((await rounds.meta(n))!);
    },
    slowWrites() {
      gate = new Promise((r) => (open = r));
    },
    fastWrites: () => open(),
  };
}

describe('a gateway that fell behind its buses', () => {
  it('voids the rounds it could not read in time for its shards, and counts them for the next', async () => {
    const g = await gatewayOfOneShard();
    await g.ownership.renew();
    // Round 5: heard on time, written at once.
    await g.playRound(5, 10);
    expect(await g.closeAndConfirm(5)).toEqual([0]);
    // Round 6: Redis slow, its heartbeats pile up, reading pauses for backpressure past the close.
    g.slowWrites();
    await g.playRound(6, 40);
    await g.ownership.renew();
    expect(await g.closeAndConfirm(6)).toEqual([]);
    expect(await suspicions(g.metrics, 'backpressure')).toBe(1);
    g.fastWrites();
    // Caught up again: the next rounds are valid again (their opening came after the resume). On a
    // machine loaded by other test files the gateway's event loop may run late for a round, which it
    // rightly counts against itself: the first of four rounds that it did not must be valid.
    await new Promise((r) => setTimeout(r, 50));
    let valid: readonly number[] = [];
    for (let n = 7; n <= 10 && valid.length === 0; n++) {
      const lateLoops = await suspicions(g.metrics, 'loop');
      await g.playRound(n, 10);
      await g.ownership.renew();
      valid = await g.closeAndConfirm(n);
      if ((await suspicions(g.metrics, 'loop')) === lateLoops) expect(valid).toEqual([0]);
    }
    expect(valid).toEqual([0]);
    expect((await g.metrics.shardRoundsVoidedLate.get()).values[0]!.value).toBeGreaterThanOrEqual(1);
  });
});
