import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSystem, waitFor, type TestSystem } from '../support/system';

// Receivers that fail in several ways must delay only their own deliveries: one that accepts and
// never answers, one that answers 500 at once. A healthy receiver beside them gets every event on
// time, and a failing one's circuit opens and shows, its news waiting in the stream, not as rows.

/**
 * A local receiver: `mode` says how it answers ('slow': 200 after 150 ms). Records when each body
 * arrived, and the most requests it held at once.
 */
async function receiver(mode: 'ok' | 'slow' | 'hang' | 'fail') {
  const arrived: { type: string; deviceId: string; at: number }[] = [];
  const hanging: import('node:http').ServerResponse[] = [];
  let requests = 0;
  let held = 0;
  let mostHeld = 0;
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      requests++;
      if (mode === 'hang') return void hanging.push(res);
      if (mode === 'fail') return void res.writeHead(500).end();
      arrived.push({ ...(JSON.parse(body) as { type: string; deviceId: string }), at: Date.now() });
      if (mode === 'ok') return void res.writeHead(200).end();
      mostHeld = Math.max(mostHeld, ++held);
      setTimeout(() => {
        held--;
        res.writeHead(200).end();
      }, 150);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    arrived,
    requests: () => requests,
    mostHeld: () => mostHeld,
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('webhooks that cannot hold each other up', () => {
  let s: TestSystem;
  const receivers: Awaited<ReturnType<typeof receiver>>[] = [];
  beforeAll(async () => {
    s = await startTestSystem({
      intervalSeconds: 1,
      env: { WEBHOOK_BACKOFF_MS: '100', WEBHOOK_FANOUT_MS: '100' },
    });
  });
  afterAll(async () => {
    await s.close();
    for (const r of receivers) await r.close();
  });

  const subscribe = async (url: string, concurrency?: number) => {
    const res = await request(s.callback)
      .post('/webhooks')
      .set(s.admin)
      .send({ url, events: ['DEVICE_REGISTERED'], concurrency });
    expect(res.status).toBe(201);
    return (res.body as { id: string }).id;
  };

  it('a live receiver gets every event within 2 s of its commit, beside 20 that never answer', async () => {
    const dead = await receiver('hang');
    const live = await receiver('ok');
    receivers.push(dead, live);
    // More hanging webhooks than the worker's old 16 shared slots.
    for (let i = 0; i < 20; i++) await subscribe(dead.url);
    await subscribe(live.url);
    const committed = new Map<string, number>();
    for (let i = 0; i < 15; i++) {
      const reg = await s.register();
      committed.set(reg.id, Date.now());
      await new Promise((r) => setTimeout(r, 100));
    }
    await waitFor(() => live.arrived.length >= 15, 20_000, 'every event at the live receiver');
    const late = live.arrived.map((a) => a.at - committed.get(a.deviceId)!);
    expect(Math.max(...late)).toBeLessThan(2000);
    // The dead ones were asked, and hold their own deliveries only.
    expect(dead.requests()).toBeGreaterThan(0);
  });

  it("a receiver's concurrency: never more deliveries on their way to it at once, and that many", async () => {
    const [narrow, wide] = [await receiver('slow'), await receiver('slow')];
    receivers.push(narrow, wide);
    const narrowId = await subscribe(narrow.url, 3);
    await subscribe(wide.url);
    const shown = await request(s.callback).get(`/webhooks/${narrowId}`).set(s.admin);
    expect((shown.body as { concurrency: number }).concurrency).toBe(3);
    await Promise.all(Array.from({ length: 40 }, () => s.register()));
    await waitFor(
      () => narrow.arrived.length >= 40 && wide.arrived.length >= 40,
      20_000,
      'the burst at both receivers',
    );
    expect(narrow.mostHeld()).toBe(3);
    // The default, 16: the 40 went at more than 3 at a time.
    expect(wide.mostHeld()).toBeGreaterThan(3);
    expect(wide.mostHeld()).toBeLessThanOrEqual(16);
  });

  it('a burst to a live receiver: each event sent once, many at a time, every delivery recorded', async () => {
    const live = await receiver('ok');
    receivers.push(live);
    const id = await subscribe(live.url);
    const regs = await Promise.all(Array.from({ length: 60 }, () => s.register()));
    await waitFor(() => live.arrived.length >= 60, 20_000, 'the burst at the receiver');
    await new Promise((r) => setTimeout(r, 1000));
    // Once each: a delivery recorded for another would be sent again.
    expect(live.arrived.map((a) => a.deviceId).sort()).toEqual(regs.map((r) => r.id).sort());
    const log = (
      await request(s.callback).get(`/webhooks/${id}/deliveries`).query({ limit: 100 }).set(s.admin)
    ).body as { deliveries: { deviceId: string; status: string; attempts: number }[] };
    expect(log.deliveries).toHaveLength(60);
    expect(log.deliveries.every((d) => d.status === 'DELIVERED' && d.attempts === 1)).toBe(true);
  });

  it("a receiver failing at once opens its circuit, shown on the webhook; nothing is sent while it's open", async () => {
    const failing = await receiver('fail');
    receivers.push(failing);
    const id = await subscribe(failing.url);
    for (let i = 0; i < 8; i++) await s.register();
    const circuit = async () =>
      ((await request(s.callback).get(`/webhooks/${id}`).set(s.admin)).body as {
        circuit: { state: string; consecutiveFailures: number; openUntil: string | null };
        pending: number;
      }) ?? {};
    await waitFor(async () => (await circuit()).circuit.state === 'open', 20_000, 'the circuit open');
    const open = await circuit();
    expect(open.circuit.consecutiveFailures).toBeGreaterThanOrEqual(5);
    expect(Date.parse(open.circuit.openUntil!)).toBeGreaterThan(Date.now());
    // Its news waits in the stream: one delivery written, the one it is tried with; all 8 pending.
    expect(open.pending).toBe(8);
    const log = (await request(s.callback).get(`/webhooks/${id}/deliveries`).set(s.admin)).body as {
      deliveries: { status: string; attempts: number }[];
    };
    expect(log.deliveries).toHaveLength(1);
    expect(log.deliveries[0]!.attempts).toBeGreaterThanOrEqual(5);
    // While open (5 s at first), no attempt reaches it.
    const before = failing.requests();
    await new Promise((r) =>
      setTimeout(r, Math.min(2000, Date.parse(open.circuit.openUntil!) - Date.now() - 200)),
    );
    expect(failing.requests()).toBe(before);
  });
});
