import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PlatformEvent } from '../../src/domain/events';
import { createLogger } from '../../src/logger';
import { createLiveFeed, type LiveFeed } from '../../src/streams/live-feed';
import { readSse } from '../support/sse';

// A watcher that does not read must not hold memory or anyone else up: once more than the bound
// waits in its socket it is cut off, and it resumes from its last id. The stream here is made up
// (a counter of events), served by the live feed over a real HTTP server and real sockets.

const padding = 'x'.repeat(400);
let head = 0;
let wake: () => void = () => {};
let cuts = 0;
let feed: LiveFeed;
let server: Server;
let port: number;

beforeAll(async () => {
  feed = createLiveFeed({
    read: async (_stream, after, limit) => {
      // As a read from Postgres would, it lets the event loop turn.
      await new Promise((r) => setImmediate(r));
      const out: { seq: number; body: PlatformEvent }[] = [];
      for (let seq = after + 1; seq <= Math.min(head, after + limit); seq++)
        out.push({ seq, body: { type: 'DEVICE_CONNECTED', eventId: String(seq), padding } as never });
      return out;
    },
    sign: async (e) => e,
    listen: (w) => ((wake = w), { close: async () => {} }),
    logger: createLogger('silent'),
    onCut: () => cuts++,
    maxBufferedBytes: 64 * 1024,
  });
  server = createServer((req, res) => {
    const after = Number(req.headers['last-event-id'] ?? 0);
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.write('retry: 2000\n\n');
    feed.watch('client', after, res, 'test');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await feed.close();
  await new Promise((r) => server.close(r));
});

const reading = { timeout: 15_000, interval: 50 };

/** Numbers `n` more events and tells the feed. */
function publish(n: number) {
  head += n;
  wake();
}

describe('a watcher too slow to keep up', () => {
  it('is cut off without slowing a fast one, and resumes exactly after its last id', async () => {
    // The slow one asks, reads the answer's head, then stops reading.
    const slow = connect(port, '127.0.0.1');
    slow.write(`GET /stream HTTP/1.1\r\nHost: x\r\n\r\n`);
    let received = '';
    slow.once('data', (d: Buffer) => {
      received += d.toString();
      slow.pause();
    });
    const closed = new Promise((r) => slow.once('close', r));
    const fast = await readSse(`http://127.0.0.1:${port}/stream`);
    await new Promise((r) => setTimeout(r, 100));
    // Some megabytes, in bursts: more than the kernel's socket buffers and the bound together.
    for (let i = 0; i < 40; i++) {
      publish(500);
      await new Promise((r) => setTimeout(r, 20));
    }
    // The fast one has all of it, in order; the slow one was cut, once. (Waited for, not timed: with
    // every core busy, reading megabytes takes the reader seconds.)
    await vi.waitFor(() => expect(fast.events.length).toBe(head), reading);
    expect(fast.events.map((e) => e.id)).toEqual(fast.events.map((_, i) => i + 1));
    expect(cuts).toBe(1);
    expect(feed.watchers()).toBe(1);
    // It reads what had reached it, then finds the stream closed.
    slow.on('data', (d: Buffer) => (received += d.toString()));
    slow.resume();
    await closed;
    const ids = [...received.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    // Only whole events count: the last one may have been cut mid-way.
    const complete = [...received.matchAll(/^id: (\d+)\ndata: .*\n\n/gm)].map((m) => Number(m[1]));
    const last = complete.at(-1)!;
    expect(ids.length).toBeGreaterThan(0);
    expect(last).toBeLessThan(head);
    const resumed = await readSse(`http://127.0.0.1:${port}/stream`, { 'Last-Event-ID': String(last) });
    await vi.waitFor(() => expect(resumed.events.length).toBe(head - last), reading);
    expect(resumed.events.map((e) => e.id)).toEqual(
      Array.from({ length: head - last }, (_, i) => last + 1 + i),
    );
    fast.close();
    resumed.close();
  });
});
