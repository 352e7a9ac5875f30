import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PlatformEvent } from '../../src/domain/events';
import { createLogger } from '../../src/logger';
import { createLiveFeed, type LiveFeed } from '../../src/streams/live-feed';
import { readSse } from '../support/sse';

// During a storm the events are numbered a few at a time, each numbering a wake of the live feed:
// a pass per wake wrote a handful of events to every watcher, one write each. Passes come at most
// every `gatherMs`, so a trickle goes out in batches, every event still once and in order. The
// stream is made up (a counter of events), served over a real HTTP server and real sockets.

const GATHER_MS = 50;
let head = 0;
let reads = 0;
let wake: () => void = () => {};
let feed: LiveFeed;
let server: Server;
let port: number;

beforeAll(async () => {
  feed = createLiveFeed({
    read: async (_stream, after, limit) => {
      reads++;
      await new Promise((r) => setImmediate(r));
      const out: { seq: number; body: PlatformEvent }[] = [];
      for (let seq = after + 1; seq <= Math.min(head, after + limit); seq++)
        out.push({ seq, body: { type: 'DEVICE_CONNECTED', eventId: String(seq) } as never });
      return out;
    },
    sign: async (e) => e,
    listen: (w) => ((wake = w), { close: async () => {} }),
    logger: createLogger('silent'),
    gatherMs: GATHER_MS,
  });
  server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.flushHeaders();
    feed.watch('client', Number(req.headers['last-event-id'] ?? 0), res, 'test');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await feed.close();
  await new Promise((r) => server.close(r));
});

describe('the live feed during a trickle of numberings', () => {
  it('reads and writes once per gathering, not once per numbering, and loses none', async () => {
    const watchers = await Promise.all([1, 2, 3].map(() => readSse(`http://127.0.0.1:${port}/stream`)));
    await vi.waitFor(() => expect(feed.watchers()).toBe(3));
    await new Promise((r) => setTimeout(r, 100));
    const before = reads;
    const started = Date.now();
    // 150 numberings of one event, 2 ms apart.
    for (let i = 0; i < 150; i++) {
      head++;
      wake();
      await new Promise((r) => setTimeout(r, 2));
    }
    for (const w of watchers)
      await vi.waitFor(() => expect(w.events.length).toBe(head), { timeout: 15_000, interval: 20 });
    const passes = reads - before;
    // One a gathering (and the one at once), not 150: with every core busy the trickle takes longer,
    // and there are as many more gatherings in it.
    expect(passes).toBeLessThanOrEqual(Math.ceil((Date.now() - started) / GATHER_MS) + 2);
    expect(passes).toBeLessThan(150 / 3);
    for (const w of watchers) {
      expect(w.events.map((e) => e.id)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
      w.close();
    }
  });
});
