import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import type { Heard } from '../../src/db/transitions';
import type { SessionEffects } from '../../src/domain/effects';
import { newToken, tokenHash } from '../../src/domain/credentials';
import { shardOf } from '../../src/domain/shards';
import { createConnector } from '../../src/gateway/connector';
import { createHeartbeatIngest, type HeartbeatIngest } from '../../src/gateway/heartbeat-ingest';
import { followRevocations } from '../../src/gateway/revocations';
import { createLogger } from '../../src/logger';
import { createMetrics, type Metrics } from '../../src/metrics';
import { createRedis, type RedisClient } from '../../src/redis/connection';
import { redisKeys } from '../../src/redis/keys';
import { createLiveness, type HeartbeatInput, type Liveness } from '../../src/redis/liveness';
import { uniquePrefix } from '../support/database';

// A gateway writes each device once per round and counts its repeats in memory. These tests hold it
// to what that must not cost: a revoked token refused at once on every gateway, nothing recorded
// that Redis did not confirm.

const SHARDS = 4;
const clients: RedisClient[] = [];
const redisClient = () => {
  const c = createRedis(inject('redisUrl'), 'worker');
  clients.push(c);
  return c;
};
let redis: RedisClient;
beforeAll(() => {
  redis = redisClient();
});
afterAll(() => clients.forEach((c) => c.disconnect()));

const frame = (token: string, round?: number) =>
  Buffer.from(JSON.stringify({ type: 'HEARTBEAT', token, ...(round === undefined ? {} : { round }) }));

/** One gateway's ingestion on the shared test Redis, its writes to Redis counted per device. */
function gateway(
  keys: ReturnType<typeof redisKeys>,
  round: { n: number },
  connect: (heard: readonly Heard[]) => Promise<SessionEffects[]> = async () => [],
  duringWrite?: () => void,
  /** Postgres as the shared bus asks it: token hash -> device. */
  devices: Map<string, string> = new Map(),
) {
  const liveness = createLiveness(redis, keys, SHARDS);
  const written: string[] = [];
  const metrics = createMetrics(`t${Math.random()}`);
  const ingest = createHeartbeatIngest({
    liveness: {
      ...liveness,
      recordHeartbeats: (batch: readonly HeartbeatInput[]) => {
        written.push(...batch.map((h) => h.deviceId));
        const done = liveness.recordHeartbeats(batch);
        duringWrite?.();
        return done;
      },
    },
    metrics,
    logger: createLogger('silent'),
    openRound: () => round.n,
    lookupTokens: async (hashes: readonly string[]) =>
      hashes.filter((h) => devices.has(h)).map((h) => ({ tokenHash: h, deviceId: devices.get(h)! })),
    connect: (fresh) => connector.add(fresh),
  });
  // As the gateway wires it: a failed connect forgets its devices, so their next heartbeat retries.
  const connector = createConnector({
    connect,
    handOff: async () => {},
    failed: (ids) => {
      for (const id of ids) {
        ingest.forgetDevice(id);
        void liveness.forgetDevice(id);
      }
    },
    metrics,
    logger: createLogger('silent'),
  });
  return { ingest, written, metrics, liveness, connector };
}

async function counted(metrics: Metrics, result: string): Promise<number> {
  return (await metrics.heartbeats.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
}

/** A device with a cached token, already in the connected index (as after its first round). */
async function device(liveness: Liveness, id = `d-${uniquePrefix()}`) {
  const token = newToken();
  await liveness.cacheTokens([{ tokenHash: tokenHash(token), deviceId: id }]);
  await liveness.seed([id], 1);
  return { id, token };
}

const heardRound = async (keys: ReturnType<typeof redisKeys>, id: string) =>
  Number(await redis.zscore(keys.liveness.shard(shardOf(id, SHARDS)).heard, id));

async function send(ingest: HeartbeatIngest, data: Buffer, deviceId: string, times = 1) {
  for (let i = 0; i < times; i++) {
    ingest.push(data, deviceId);
    await ingest.flush();
  }
}

describe('heartbeat ingestion: once per round in Redis', () => {
  it('writes a device once per round and counts every heartbeat', async () => {
    const keys = redisKeys(uniquePrefix());
    const round = { n: 5 };
    const g = gateway(keys, round);
    const d = await device(g.liveness);
    await send(g.ingest, frame(d.token), d.id, 40);
    expect(g.written.filter((id) => id === d.id)).toHaveLength(1);
    expect(await counted(g.metrics, 'accepted')).toBe(40);
    expect(await heardRound(keys, d.id)).toBe(5);
    round.n = 6;
    await send(g.ingest, frame(d.token), d.id, 3);
    expect(g.written.filter((id) => id === d.id)).toHaveLength(2);
    expect(await heardRound(keys, d.id)).toBe(6);
    expect(await counted(g.metrics, 'accepted')).toBe(43);
  });

  it('heartbeats that come while the first of the round is written wait for its answer', async () => {
    const keys = redisKeys(uniquePrefix());
    const g = gateway(keys, { n: 5 });
    const d = await device(g.liveness);
    const other = await device(g.liveness);
    // One burst, as a socket's chunk brings it: nothing is written before the last is taken.
    for (let i = 0; i < 30; i++) g.ingest.push(frame(d.token), d.id);
    for (let i = 0; i < 30; i++) g.ingest.push(frame(d.token), other.id);
    await g.ingest.flush();
    expect(g.written.filter((id) => id === d.id)).toHaveLength(1);
    expect(await counted(g.metrics, 'accepted')).toBe(30);
    const refused = (await counted(g.metrics, 'misplaced')) + (await counted(g.metrics, 'unknown_token'));
    expect(refused).toBe(30);
    expect(await heardRound(keys, other.id)).toBe(1);
  });

  it('a stale echo records nothing, so the next heartbeat of the round is written', async () => {
    const keys = redisKeys(uniquePrefix());
    const g = gateway(keys, { n: 8 });
    const d = await device(g.liveness);
    await send(g.ingest, frame(d.token, 7), d.id, 2);
    expect(await heardRound(keys, d.id)).toBe(1);
    await send(g.ingest, frame(d.token, 8), d.id);
    expect(await heardRound(keys, d.id)).toBe(8);
    expect(await counted(g.metrics, 'stale')).toBe(2);
  });

  it('a token heard on another device’s bus is not taken from memory', async () => {
    const keys = redisKeys(uniquePrefix());
    const g = gateway(keys, { n: 3 });
    const a = await device(g.liveness);
    const b = await device(g.liveness);
    await send(g.ingest, frame(a.token), a.id);
    await send(g.ingest, frame(a.token), b.id, 2);
    // Refused (misplaced, or unknown in b's shard when a's token is cached in another one).
    expect(await counted(g.metrics, 'accepted')).toBe(1);
    expect(await heardRound(keys, b.id)).toBe(1);
  });

  it('on the shared bus, a robot heard every round is refused at once when its token is rotated', async () => {
    const round = { n: 5 };
    const keys = redisKeys(uniquePrefix());
    const postgres = new Map<string, string>();
    const g = gateway(keys, round, undefined, undefined, postgres);
    const d = await device(g.liveness);
    postgres.set(tokenHash(d.token), d.id);
    for (const n of [5, 6]) {
      round.n = n;
      g.ingest.push(frame(d.token));
      await g.ingest.flush();
    }
    expect(await counted(g.metrics, 'accepted')).toBe(2);
    await g.liveness.forgetToken(d.id, tokenHash(d.token));
    postgres.delete(tokenHash(d.token));
    g.ingest.revoke(d.id, tokenHash(d.token));
    round.n = 7;
    for (let i = 0; i < 3; i++) {
      g.ingest.push(frame(d.token));
      await g.ingest.flush();
    }
    expect(await counted(g.metrics, 'accepted')).toBe(2);
    expect(await counted(g.metrics, 'unknown_token')).toBe(3);
    expect(await heardRound(keys, d.id)).toBe(6);
  });

  it('a frame unlike the last one on a bus is read anew, even of the same length', async () => {
    const keys = redisKeys(uniquePrefix());
    const g = gateway(keys, { n: 3 });
    const a = await device(g.liveness);
    const b = await device(g.liveness);
    await send(g.ingest, frame(a.token), a.id, 2);
    // Same length as a's frame: only its bytes tell it from the one remembered.
    expect(frame(b.token)).toHaveLength(frame(a.token).length);
    await send(g.ingest, frame(b.token), a.id, 2);
    const garbled = Buffer.from(frame(a.token));
    garbled[garbled.length - 1] = 0x20;
    await send(g.ingest, garbled, a.id);
    expect(await counted(g.metrics, 'accepted')).toBe(2);
    expect(await counted(g.metrics, 'malformed')).toBe(1);
  });

  it('a failed connect leaves memory too, so the next heartbeat of the round tries again', async () => {
    const keys = redisKeys(uniquePrefix());
    let attempts = 0;
    const g = gateway(keys, { n: 4 }, async (heard) => {
      attempts++;
      if (attempts === 1) throw new Error('Postgres away');
      return heard.map((h) => ({ deviceId: h.deviceId, sessionId: randomUUID(), effects: [] }));
    });
    const token = newToken();
    const id = `d-${uniquePrefix()}`;
    await g.liveness.cacheTokens([{ tokenHash: tokenHash(token), deviceId: id }]);
    await send(g.ingest, frame(token), id);
    await g.connector.idle();
    await vi.waitFor(async () => expect(await heardRound(keys, id)).toBe(0));
    await send(g.ingest, frame(token), id);
    await g.connector.idle();
    expect(attempts).toBe(2);
    expect(await heardRound(keys, id)).toBe(4);
  });

  it('records heartbeats without waiting for the connects they start', async () => {
    const keys = redisKeys(uniquePrefix());
    let release!: () => void;
    const connecting = new Promise<void>((r) => (release = r));
    const asked: string[] = [];
    const g = gateway(keys, { n: 6 }, async (heard) => {
      asked.push(...heard.map((h) => h.deviceId));
      await connecting;
      return [];
    });
    const robots = await Promise.all(
      Array.from({ length: 3 }, async (_, i) => {
        const token = newToken();
        const id = `d-${i}-${uniquePrefix()}`;
        await g.liveness.cacheTokens([{ tokenHash: tokenHash(token), deviceId: id }]);
        return { id, token };
      }),
    );
    await send(g.ingest, frame(robots[0]!.token), robots[0]!.id);
    // The first connect hangs: the next heartbeats are written all the same, and their devices wait
    // for the next batch together.
    for (const r of robots.slice(1)) await send(g.ingest, frame(r.token), r.id);
    for (const r of robots) expect(await heardRound(keys, r.id)).toBe(6);
    expect(g.connector.backlog()).toBe(3);
    release();
    await g.connector.idle();
    expect(asked.sort()).toEqual(robots.map((r) => r.id).sort());
  });
});

describe('heartbeat ingestion: a flood', () => {
  it('tells the session to stop reading once a turn of the event loop took its share, and not on the next', async () => {
    const keys = redisKeys(uniquePrefix());
    const g = gateway(keys, { n: 2 });
    const d = await device(g.liveness);
    await send(g.ingest, frame(d.token), d.id);
    const data = frame(d.token);
    // In memory all of them, after the first: only this answer can stop a turn that never ends.
    const answers: boolean[] = [];
    for (let i = 0; i < 60_000; i++) answers.push(g.ingest.push(data, d.id));
    expect(answers.indexOf(false)).toBe(50_000);
    expect(answers.slice(50_000).every((a) => !a)).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(g.ingest.push(data, d.id)).toBe(true);
    await g.ingest.flush();
    expect(await counted(g.metrics, 'accepted')).toBe(60_002);
  });
});

describe('heartbeat ingestion: revoked tokens', () => {
  async function twoGateways() {
    const keys = redisKeys(uniquePrefix());
    const round = { n: 5 };
    const gateways = [gateway(keys, round), gateway(keys, round)];
    const subscribers = gateways.map(() => redisClient());
    await Promise.all(
      gateways.map((g, i) => followRevocations(subscribers[i]!, keys.liveness.tokensRevoked, g.ingest)),
    );
    const d = await device(gateways[0]!.liveness);
    for (const g of gateways) await send(g.ingest, frame(d.token), d.id, 2);
    return { keys, round, gateways, subscribers, d };
  }

  it('a rotated token is refused at once on every gateway, within the round it was rotated in', async () => {
    const { gateways, d } = await twoGateways();
    const before = await Promise.all(gateways.map((g) => counted(g.metrics, 'accepted')));
    await gateways[0]!.liveness.forgetToken(d.id, tokenHash(d.token));
    await new Promise((r) => setTimeout(r, 10));
    for (const g of gateways) await send(g.ingest, frame(d.token), d.id, 3);
    for (const [i, g] of gateways.entries()) {
      expect(await counted(g.metrics, 'accepted')).toBe(before[i]);
      expect(await counted(g.metrics, 'unknown_token')).toBe(3);
    }
  });

  /** A gateway whose first write to Redis sees the device's token revoked, then runs `after`. */
  async function revokedDuringFirstWrite(
    after?: (g: ReturnType<typeof gateway>, token: string, id: string) => void,
  ) {
    let during: (() => void) | undefined;
    const g = gateway(redisKeys(uniquePrefix()), { n: 5 }, undefined, () => during?.());
    const d = await device(g.liveness);
    during = () => {
      during = undefined;
      void g.liveness.forgetToken(d.id, tokenHash(d.token));
      g.ingest.revoke(d.id, tokenHash(d.token));
      after?.(g, d.token, d.id);
    };
    return { g, d };
  }

  it('a revocation that arrives while the batch is in Redis is not undone by the batch', async () => {
    const { g, d } = await revokedDuringFirstWrite();
    await send(g.ingest, frame(d.token), d.id);
    await send(g.ingest, frame(d.token), d.id, 2);
    expect(g.written.filter((id) => id === d.id)).toHaveLength(3);
  });

  it('heartbeats that come after a revocation do not wait for a write from before it', async () => {
    const { g, d } = await revokedDuringFirstWrite((g, token, id) => {
      for (let i = 0; i < 3; i++) g.ingest.push(frame(token), id);
    });
    await send(g.ingest, frame(d.token), d.id);
    await g.ingest.flush();
    expect(await counted(g.metrics, 'accepted')).toBe(1);
    expect(await counted(g.metrics, 'unknown_token')).toBe(3);
  });

  it('a revocation message lost with the subscriber is made up for when it reconnects', async () => {
    const { keys, gateways, subscribers, d } = await twoGateways();
    const [g] = gateways;
    await subscribers[0]!.unsubscribe(keys.liveness.tokensRevoked);
    await g!.liveness.forgetToken(d.id, tokenHash(d.token));
    const reconnected = new Promise((r) => subscribers[0]!.once('ready', r));
    subscribers[0]!.disconnect(true);
    await reconnected;
    const before = await counted(g!.metrics, 'accepted');
    await send(g!.ingest, frame(d.token), d.id);
    expect(await counted(g!.metrics, 'accepted')).toBe(before);
  });

  it('without the message, a revoked token records nothing: the next round meets the tombstone', async () => {
    const { keys, round, gateways, d } = await twoGateways();
    const [g] = gateways;
    // The tombstone alone, as if every revocation message were lost.
    await redis.hset(keys.liveness.shard(shardOf(d.id, SHARDS)).tokens, tokenHash(d.token), '-');
    round.n = 6;
    await send(g!.ingest, frame(d.token), d.id, 2);
    expect(await heardRound(keys, d.id)).toBe(5);
    expect(await counted(g!.metrics, 'unknown_token')).toBe(2);
  });
});
