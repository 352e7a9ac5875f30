import { afterEach, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { createLogger } from '../../src/logger';
import { MothClient } from '../../src/moth/client';
import { MothHub } from '../../src/moth/hub';
import { LogCapture } from '../support/app';
import { waitFor } from '../support/system';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function hub(options: ConstructorParameters<typeof MothHub>[0] = {}) {
  const h = new MothHub(options);
  const url = await h.start();
  cleanup.push(() => h.stop());
  return { h, url };
}

function client(url: string, path: string, extra: Partial<ConstructorParameters<typeof MothClient>[0]> = {}) {
  const logs = new LogCapture();
  const c = new MothClient({
    url,
    path,
    frameGapMs: 5,
    pingSeconds: 10,
    logger: createLogger('debug', 'moth', logs),
    reconnect: { minMs: 50, maxMs: 400 },
    ...extra,
  });
  cleanup.push(() => c.stop());
  return { c, logs };
}

async function listener(url: string, path: string) {
  const ws = new WebSocket(`${url}${path}`);
  const frames: { text: string; binary: boolean }[] = [];
  ws.on('message', (d, binary) => frames.push({ text: (d as Buffer).toString(), binary }));
  await new Promise((r) => ws.once('open', r));
  cleanup.push(async () => ws.terminate());
  return frames;
}

const PATH = '/pang/ws/meb?channel=instant&name=t&source=base&track=base';

describe('Moth client', () => {
  it('sends JSON as binary frames, paced so a lossy Moth delivers every one', async () => {
    const { url } = await hub();
    const frames = await listener(url, PATH);
    const { c } = client(url, PATH);
    c.start();
    await c.waitOpen();
    await Promise.all(Array.from({ length: 20 }, (_, i) => c.send({ type: 'REXT-looking', i })));
    await waitFor(() => frames.length === 20, 2000, '20 frames');
    expect(frames.every((f) => f.binary)).toBe(true);
    expect(frames.map((f) => (JSON.parse(f.text) as { i: number }).i)).toEqual(
      Array.from({ length: 20 }, (_, i) => i),
    );
  });

  it('pings inside the idle timeout without needing pongs', async () => {
    const { url } = await hub();
    const { c } = client(url, `${PATH}&timeout=1`, { pingSeconds: 0.3 });
    c.start();
    await c.waitOpen();
    const since = c.connectedSince;
    await new Promise((r) => setTimeout(r, 2500));
    expect(c.isOpen).toBe(true);
    expect(c.connectedSince).toBe(since);
  });

  it('spreads the pings of sessions opened together over the period, each pinging every period', async () => {
    // A bare server that notes when each connection pings (the hub never answers them).
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1', autoPong: false });
    cleanup.push(() => new Promise((r) => server.close(() => r())));
    await new Promise((r) => server.once('listening', r));
    const pings: number[][] = [];
    server.on('connection', (ws) => {
      const mine: number[] = [];
      pings.push(mine);
      ws.on('ping', () => mine.push(performance.now()));
    });
    const url = `ws://127.0.0.1:${(server.address() as { port: number }).port}`;
    const sessions = Array.from({ length: 40 }, () => client(url, PATH, { pingSeconds: 1 }).c);
    for (const c of sessions) c.start();
    await Promise.all(sessions.map((c) => c.waitOpen()));
    await new Promise((r) => setTimeout(r, 2600));
    const first = pings.map((p) => p[0]!);
    expect(pings).toHaveLength(40);
    // On one clock the 40 first pings come within a few ms of each other; spread, over most of 1 s.
    expect(Math.max(...first) - Math.min(...first)).toBeGreaterThan(500);
    for (const p of pings) {
      expect(p.length).toBeGreaterThanOrEqual(2);
      expect(p[1]! - p[0]!).toBeGreaterThan(900);
      expect(p[1]! - p[0]!).toBeLessThan(1500);
    }
  });

  it('rejects sends while down, reconnects with backoff when Moth comes back', async () => {
    const { h, url } = await hub();
    const port = h.port;
    const { c, logs } = client(url, PATH);
    c.start();
    await c.waitOpen();
    await new Promise((r) => setTimeout(r, 1100)); // past the window in which a drop means "rejected"
    await h.stop();
    await waitFor(() => !c.isOpen, 2000, 'session lost');
    await expect(c.send({ type: 'X' })).rejects.toThrow(/not open/);
    // While Moth is down, something on its port drops every connection: the client's attempts must
    // thin out (backoff from 50 ms doubling to 400 ms, jittered), not hammer it.
    const attempts: number[] = [];
    const refuser = createServer((socket) => {
      attempts.push(Date.now());
      socket.destroy();
    });
    await new Promise<void>((resolve) => refuser.listen(port, '127.0.0.1', resolve));
    await new Promise((r) => setTimeout(r, 2500));
    await new Promise<void>((resolve) => refuser.close(() => resolve()));
    expect(attempts.length).toBeGreaterThanOrEqual(4);
    expect(attempts.length).toBeLessThanOrEqual(20);
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    expect(Math.max(...gaps.slice(-3))).toBeGreaterThanOrEqual(150);
    const again = new MothHub({ port });
    await again.start();
    cleanup.push(() => again.stop());
    await c.waitOpen(5000);
    expect(logs.text).toContain('moth session lost');
    await c.send({ type: 'after' });
  });

  it('a labelled session logs its label, never its path (a bus path is what lets one listen to the bus)', async () => {
    const { h, url } = await hub();
    const secretPath = '/pang/ws/meb?channel=instant&name=dm&source=base&track=Secret-Bus-Id_0123456';
    const { c, logs } = client(url, secretPath, { label: 'bus of device d1', quiet: true });
    c.start();
    await c.waitOpen();
    await new Promise((r) => setTimeout(r, 1100));
    await h.stop();
    await waitFor(() => !c.isOpen, 2000, 'session lost');
    await c.stop();
    expect(logs.text).toContain('bus of device d1');
    expect(logs.text).toContain('moth session lost');
    expect(logs.text).not.toContain('Secret-Bus-Id');
    // Quiet: opens and drops of one of thousands of sessions are debug lines (pino level 20).
    for (const line of logs.text.trim().split('\n'))
      expect((JSON.parse(line) as { level: number }).level).toBe(20);
  });

  it('reports a connection dropped right after opening as a rejection', async () => {
    const { url } = await hub({ key: 'right' });
    const { c, logs } = client(url, PATH, { key: 'wrong' });
    c.start();
    await waitFor(() => logs.text.includes('rejected'), 3000, 'rejection reported');
    // Moth opens the socket before it drops it, so isOpen is true for a moment at each retry:
    // what must hold is that every drop is told as a rejection, never as a lost session.
    await new Promise((r) => setTimeout(r, 300));
    expect(logs.text).not.toContain('moth session lost');
  });

  it('refuses a non-ws URL and a non-Moth path at construction', () => {
    const logger = createLogger('silent');
    expect(
      () => new MothClient({ url: 'http://x', path: PATH, frameGapMs: 5, pingSeconds: 10, logger }),
    ).toThrow();
    expect(
      () => new MothClient({ url: 'ws://x', path: '/other', frameGapMs: 5, pingSeconds: 10, logger }),
    ).toThrow();
  });
});
