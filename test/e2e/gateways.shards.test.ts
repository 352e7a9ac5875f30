import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createShardLeases } from '../../src/redis/shard-leases';
import { jsonLine, runTs } from '../../bench/support';
import { startTestSystem, waitFor, type TestSystem } from '../support/system';

// Gateways as separate processes, as deployments scale them, one of them SIGKILLed mid-run.
const DEVICES = 150;
const INTERVAL = 1;
const MAX = 2;

let s: TestSystem;
let monitor: ChildProcess;
const gateways: ReturnType<typeof runTs>[] = [];
/** Heartbeats recorded in Redis per device, read off the ingest script's arguments. */
const recorded = new Map<string, number>();
let counting = false;

function startGateway() {
  const g = runTs('workers/gateway.ts', {
    DATABASE_URL: s.config.DATABASE_URL,
    REDIS_URL: s.config.REDIS_URL,
    MOTH_URL: s.config.MOTH_URL,
    QUEUE_PREFIX: s.config.QUEUE_PREFIX,
    OPS_PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
  });
  gateways.push(g);
  return g;
}

beforeAll(async () => {
  s = await startTestSystem({ gateways: 0, intervalSeconds: INTERVAL, maxMisses: MAX });
  // Every command Redis runs (redis-cli MONITOR): the ingest script names each heartbeat's device
  // among its arguments.
  monitor = spawn('redis-cli', ['-u', inject('redisUrl'), 'monitor'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const tokensKey = `${s.config.QUEUE_PREFIX}:{s`;
  let buffer = '';
  monitor.stdout!.on('data', (d: Buffer) => {
    buffer += d.toString();
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      if (!counting) continue;
      const args = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!);
      if (!/^(evalsha|eval)$/i.test(args[0] ?? '') || args[2] !== '3') continue;
      if (!args[3]?.startsWith(tokensKey) || !args[3].endsWith(':tokens')) continue;
      for (let k = 10; k < args.length; k += 2) recorded.set(args[k]!, (recorded.get(args[k]!) ?? 0) + 1);
    }
  });
  for (let i = 0; i < 3; i++) await startGateway().waitLine(jsonLine('gateway started'));
}, 60_000);
afterAll(async () => {
  monitor?.kill();
  for (const g of gateways) await g.stop();
  await s.close();
}, 60_000);

const leases = () => createShardLeases(s.redis, s.keys).all();
/** True when every shard is held, by one of `owners`, with all its sessions open. */
async function allHeldBy(owners: Set<string>): Promise<boolean> {
  const all = await leases();
  for (let shard = 0; shard < s.config.SHARDS; shard++) {
    const h = all.get(shard);
    if (!h || !owners.has(h.owner) || h.since === null || h.expires < Date.now()) return false;
  }
  return true;
}
const owners = async () => new Set([...(await leases()).values()].map((h) => h.owner));
/**
 * Waits for 0.8 of the current round, when its HEALTHCHECKs (spread over 0.5 s) have all been answered
 * and written: a window opened or closed there cuts no heartbeat between its sending and its write.
 */
async function quietPhase(): Promise<void> {
  const round = Number(await s.redis.get(s.keys.rounds.counter));
  const issuedAt = Number(await s.redis.hget(s.keys.rounds.meta(round), 'issuedAt'));
  let at = issuedAt + 0.8 * INTERVAL * 1000;
  while (at < Date.now()) at += INTERVAL * 1000;
  await new Promise((r) => setTimeout(r, at - Date.now()));
}
const disconnects = async () =>
  Number(
    (await s.db('outbox').where({ type: 'DEVICE_DISCONNECTED' }).count<{ n: string }[]>('* as n'))[0]!.n,
  );

describe('gateways divide the shards and scale out', () => {
  it('three gateways, one SIGKILLed, one started, one stopped: no answering device disconnected, each heartbeat recorded once', async () => {
    await waitFor(async () => (await owners()).size === 3, 10_000, 'three gateways holding shards');
    const three = await owners();
    const fleet: Awaited<ReturnType<TestSystem['device']>>[] = [];
    for (let i = 0; i < DEVICES; i++) fleet.push(await s.device({ replyDelayMs: () => Math.random() * 10 }));
    await waitFor(
      async () => (await Promise.all(fleet.map((d) => s.status(d.id)))).every((st) => st === 'CONNECTED'),
      20_000,
      'fleet connected',
    );
    await quietPhase();
    const sentBefore = new Map(fleet.map((d) => [d.id, d.device.heartbeatsSent]));
    counting = true;
    await new Promise((r) => setTimeout(r, 3 * INTERVAL * 1000));

    // SIGKILL: no release, no goodbye; its leases must expire and be taken over.
    const victim = gateways[0]!;
    const killedAt = Date.now();
    victim.child.kill('SIGKILL');
    const survivors = new Set([...three].filter((g) => !g.includes(`-${victim.child.pid}-`)));
    expect(survivors.size).toBe(2);
    await waitFor(() => allHeldBy(survivors), 15_000, 'shards taken over');
    const takeoverMs = Date.now() - killedAt;
    console.log(`takeover after SIGKILL: ${takeoverMs} ms`);
    // Lease of 3 s, renewed each second, then the sessions of the shards taken over opened.
    expect(takeoverMs).toBeLessThan(6000);

    // A gateway joining takes its share again, released by the others (no overlap, no gap of owner).
    const joined = startGateway();
    await joined.waitLine(jsonLine('gateway started'));
    await waitFor(async () => (await owners()).size === 3, 10_000, 'the new gateway holding shards');
    await waitFor(async () => allHeldBy(await owners()), 10_000, 'every shard held again');
    await new Promise((r) => setTimeout(r, (MAX + 1) * INTERVAL * 1000));

    // A gateway leaving (SIGTERM) releases its leases at once: the others take them within a renewal.
    const leaving = gateways[1]!;
    const before = await owners();
    const leftAt = Date.now();
    await leaving.stop();
    const remaining = new Set([...before].filter((g) => !g.includes(`-${leaving.child.pid}-`)));
    expect(remaining.size).toBe(2);
    await waitFor(() => allHeldBy(remaining), 10_000, 'shards of the leaving gateway taken');
    const handoverMs = Date.now() - leftAt;
    console.log(`handover after SIGTERM: ${handoverMs} ms`);
    expect(handoverMs).toBeLessThan(4000);
    await new Promise((r) => setTimeout(r, (MAX + 3) * INTERVAL * 1000));
    await quietPhase();
    counting = false;

    expect(await disconnects()).toBe(0);
    for (const d of fleet) expect(await s.status(d.id)).toBe('CONNECTED');
    let sent = 0;
    let total = 0;
    for (const d of fleet) {
      const mine = d.device.heartbeatsSent - sentBefore.get(d.id)!;
      const got = recorded.get(d.id) ?? 0;
      // Recorded once at most per heartbeat sent, whatever the number of gateways.
      expect(got).toBeLessThanOrEqual(mine);
      sent += mine;
      total += got;
    }
    console.log(`heartbeats sent ${sent}, recorded in Redis ${total}`);
    // Those answered while a killed gateway's shards waited for their new owner are not heard.
    expect(total).toBeGreaterThanOrEqual(sent * 0.8);
  }, 120_000);
});
