import { mkdtempSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { startEmbeddedRedis } from '../../src/dev/embedded-redis';
import type { RunningService } from '../../src/dev/embedded-postgres';
import { roundsReceived, startTestSystem, waitFor, type TestSystem } from '../support/system';

// This file has a Redis of its own, so it can restart it.
let redis: RunningService;
let redisDir: string;
let s: TestSystem;
beforeAll(async () => {
  redisDir = mkdtempSync(join(inject('runDir'), 'redis-'));
  chmodSync(redisDir, 0o755);
  redis = await startEmbeddedRedis(redisDir);
  s = await startTestSystem({ intervalSeconds: 1, maxMisses: 2, redisUrl: redis.url });
});
afterAll(async () => {
  await s.close();
  await redis.stop();
});

async function fleet(n: number) {
  const devices = await Promise.all(Array.from({ length: n }, () => s.device()));
  for (const d of devices) await s.waitStatus(d.id, 'CONNECTED', 5000);
  return devices;
}

async function roundsPass(
  device: { device: Parameters<typeof roundsReceived>[0] },
  n: number,
  timeoutMs = 15_000,
) {
  const start = roundsReceived(device.device).at(-1)?.round ?? 0;
  await waitFor(
    () => (roundsReceived(device.device).at(-1)?.round ?? 0) >= start + n,
    timeoutMs,
    `${n} rounds`,
  );
}

describe('restarts never disconnect a device that keeps answering', () => {
  // (The worker killed with SIGKILL, mid-evaluation, is the chaos suite's: that needs a process.)
  it('the worker stopped and restarted: answering devices stay, a silent one is caught after the restart', async () => {
    const [quiet, ...devices] = await fleet(4);
    await s.stopRole(s.workers[0]!);
    quiet!.device.silent = true;
    await new Promise((r) => setTimeout(r, 4000)); // more than (max+1) intervals without evaluation
    // Nobody evaluates while no worker runs: the silent device is still connected.
    expect(await s.status(quiet!.id)).toBe('CONNECTED');
    await s.startWorker();
    await roundsPass(devices[0]!, 4);
    for (const d of devices) expect(s.eventsOf(d.id, 'DEVICE_DISCONNECTED')).toHaveLength(0);
    // Evaluation ran again after the restart: the device that went silent is disconnected, once.
    await s.waitStatus(quiet!.id, 'DISCONNECTED', 5000);
    await waitFor(() => s.eventsOf(quiet!.id, 'DEVICE_DISCONNECTED').length > 0, 5000, 'its event');
    expect(s.eventsOf(quiet!.id, 'DEVICE_DISCONNECTED')).toHaveLength(1);
  });

  it('the only gateway stopped for longer than the detection bound, then restarted', async () => {
    const devices = await fleet(3);
    await s.stopRole(s.gateways[0]!);
    await new Promise((r) => setTimeout(r, 5000));
    await s.startGateway();
    await roundsPass(devices[0]!, 4);
    for (const d of devices) {
      expect(await s.status(d.id)).toBe('CONNECTED');
      expect(s.eventsOf(d.id, 'DEVICE_DISCONNECTED')).toHaveLength(0);
    }
  });

  it('the Moth hub down for three intervals; events raised meanwhile are delivered after', async () => {
    const devices = await fleet(3);
    const backNoSoonerThan = Date.now() + 3000;
    const restart = s.restartHub(3000);
    await new Promise((r) => setTimeout(r, 500));
    const during = await s.register(); // DEVICE_REGISTERED while Moth is down
    await restart;
    for (const d of devices) await d.device.connect(); // robots reconnect to Moth
    await roundsPass(devices[0]!, 4);
    for (const d of devices) {
      expect(await s.status(d.id)).toBe('CONNECTED');
      expect(s.eventsOf(d.id, 'DEVICE_DISCONNECTED')).toHaveLength(0);
    }
    // Sent once Moth was back. A client hears it on the channel, unless the gateway sent it before
    // the client had joined again (Moth keeps nothing for a later joiner): then the client's feed has it.
    const published = async () =>
      (
        await s
          .db('outbox')
          .where({ device_id: during.id, type: 'DEVICE_REGISTERED' })
          .first<{ published_at: Date | null }>('published_at')
      )?.published_at ?? null;
    await waitFor(async () => (await published()) !== null, 5000, 'event sent after the outage');
    expect(+(await published())!).toBeGreaterThanOrEqual(backNoSoonerThan);
    if (+(await published())! >= s.listenerJoinedAt()) {
      await waitFor(() => s.eventsOf(during.id, 'DEVICE_REGISTERED').length > 0, 5000, 'event heard');
    } else {
      const feed = await request(s.callback).get('/events').query({ limit: 1000 }).set(s.admin);
      const types = (feed.body as { events: { deviceId: string; type: string }[] }).events
        .filter((e) => e.deviceId === during.id)
        .map((e) => e.type);
      expect(types).toContain('DEVICE_REGISTERED');
    }
  });

  it('Redis restarted (append-only file on), and a device that stops answering is still detected', async () => {
    const devices = await fleet(3);
    const quiet = devices[2]!;
    await redis.stop();
    await new Promise((r) => setTimeout(r, 2000));
    redis = await startEmbeddedRedis(redisDir, () => {}, new URL(redis.url).port);
    await roundsPass(devices[0]!, 4, 30_000);
    for (const d of devices) expect(s.eventsOf(d.id, 'DEVICE_DISCONNECTED')).toHaveLength(0);
    quiet.device.silent = true;
    await s.waitStatus(quiet.id, 'DISCONNECTED', 10_000);
    for (const d of devices.slice(0, 2)) expect(await s.status(d.id)).toBe('CONNECTED');
  }, 60_000);

  it('Redis state lost entirely is rebuilt without disconnecting anyone', async () => {
    const [answering, later, gone] = await fleet(3);
    const devices = [answering!, later!];
    const before = Number(await s.redis.get(s.keys.rounds.counter));
    // Silent from the loss on: never heard again, it is caught only if the state is rebuilt from Postgres.
    gone!.device.silent = true;
    await s.redis.flushall();
    await roundsPass(devices[0]!, 4, 30_000);
    for (const d of devices) {
      expect(await s.status(d.id)).toBe('CONNECTED');
      expect(s.eventsOf(d.id, 'DEVICE_DISCONNECTED')).toHaveLength(0);
    }
    await s.waitStatus(gone!.id, 'DISCONNECTED', 10_000);
    // Round numbers never go back, so sessions stay comparable.
    expect(Number(await s.redis.get(s.keys.rounds.counter))).toBeGreaterThanOrEqual(before);
    devices[1]!.device.silent = true;
    await s.waitStatus(devices[1]!.id, 'DISCONNECTED', 10_000);
  }, 60_000);
});

describe('settings apply live', () => {
  it('a new interval is used from the next round, without a restart', async () => {
    const [d] = await fleet(1);
    const res = await request(s.callback)
      .patch('/server-settings')
      .set(s.admin)
      .send({ device: { healthcheckIntervalSeconds: 2 } });
    expect(res.status).toBe(200);
    await waitFor(
      () => roundsReceived(d!.device).filter((r) => r.intervalSeconds === 2).length >= 3,
      12_000,
      'rounds at 2 s',
    );
    const slow = roundsReceived(d!.device).filter((r) => r.intervalSeconds === 2);
    const gaps = slow.slice(1).map((r, i) => Date.parse(r.issuedAt) - Date.parse(slow[i]!.issuedAt));
    for (const g of gaps) {
      expect(g).toBeGreaterThan(1700);
      expect(g).toBeLessThan(2500);
    }
    expect(await s.status(d!.id)).toBe('CONNECTED');
    await request(s.callback)
      .patch('/server-settings')
      .set(s.admin)
      .send({ device: { healthcheckIntervalSeconds: 1 } });
  });
});
