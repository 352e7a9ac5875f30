import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { serveMadeUpFeed } from '../support/made-up-feed';
import { readSse } from '../support/sse';

// A watcher that does not read must not hold memory or anyone else up: once more than the bound
// waits in its socket it is cut off, and it resumes from its last id. The stream here is made up
// (a counter of events), served by the live feed over a real HTTP server and real sockets.

let cuts = 0;
let served: Awaited<ReturnType<typeof serveMadeUpFeed>>;
let port: number;

beforeAll(async () => {
  served = await serveMadeUpFeed({
    padding: 'x'.repeat(400),
    onCut: () => cuts++,
    maxBufferedBytes: 64 * 1024,
  });
  port = served.port;
});
afterAll(() => served.close());

const reading = { timeout: 15_000, interval: 50 };
const publish = (n: number) => served.publish(n);

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
    await vi.waitFor(() => expect(fast.events.length).toBe(served.state.head), reading);
    expect(fast.events.map((e) => e.id)).toEqual(fast.events.map((_, i) => i + 1));
    expect(cuts).toBe(1);
    expect(served.feed.watchers()).toBe(1);
    // It reads what had reached it, then finds the stream closed.
    slow.on('data', (d: Buffer) => (received += d.toString()));
    slow.resume();
    await closed;
    const ids = [...received.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    // Only whole events count: the last one may have been cut mid-way.
    const complete = [...received.matchAll(/^id: (\d+)\ndata: .*\n\n/gm)].map((m) => Number(m[1]));
    const last = complete.at(-1)!;
    expect(ids.length).toBeGreaterThan(0);
    const head = served.state.head;
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
