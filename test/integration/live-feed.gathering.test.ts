import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { serveMadeUpFeed } from '../support/made-up-feed';
import { readSse } from '../support/sse';

// During a storm the events are numbered a few at a time, each numbering a wake of the live feed:
// a pass per wake wrote a handful of events to every watcher, one write each. Passes come at most
// every `gatherMs`, so a trickle goes out in batches, every event still once and in order. The
// stream is made up (a counter of events), served over a real HTTP server and real sockets.

const GATHER_MS = 50;
let served: Awaited<ReturnType<typeof serveMadeUpFeed>>;

beforeAll(async () => {
  served = await serveMadeUpFeed({ gatherMs: GATHER_MS });
});
afterAll(() => served.close());

describe('the live feed during a trickle of numberings', () => {
  it('reads and writes once per gathering, not once per numbering, and loses none', async () => {
    const watchers = await Promise.all(
      [1, 2, 3].map(() => readSse(`http://127.0.0.1:${served.port}/stream`)),
    );
    await vi.waitFor(() => expect(served.feed.watchers()).toBe(3));
    await new Promise((r) => setTimeout(r, 100));
    const before = served.state.reads;
    const started = Date.now();
    // 150 numberings of one event, 2 ms apart.
    for (let i = 0; i < 150; i++) {
      served.publish(1);
      await new Promise((r) => setTimeout(r, 2));
    }
    for (const w of watchers)
      await vi.waitFor(() => expect(w.events.length).toBe(served.state.head), {
        timeout: 15_000,
        interval: 20,
      });
    const passes = served.state.reads - before;
    // One a gathering (and the one at once), not 150: with every core busy the trickle takes longer,
    // and there are as many more gatherings in it.
    expect(passes).toBeLessThanOrEqual(Math.ceil((Date.now() - started) / GATHER_MS) + 2);
    expect(passes).toBeLessThan(150 / 3);
    for (const w of watchers) {
      expect(w.events.map((e) => e.id)).toEqual(Array.from({ length: served.state.head }, (_, i) => i + 1));
      w.close();
    }
  });
});
