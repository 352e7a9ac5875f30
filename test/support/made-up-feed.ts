import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PlatformEvent } from '../../src/domain/events';
import { createLogger } from '../../src/logger';
import { createLiveFeed, type LiveFeedDeps } from '../../src/streams/live-feed';

/**
 * The live feed over a made-up stream (a counter of events, each `padding` long), served at `/stream`
 * by a real HTTP server: `publish(n)` numbers n more events and wakes the feed, `reads` counts the
 * feed's reads of the stream.
 */
export async function serveMadeUpFeed(
  options: Pick<LiveFeedDeps, 'onCut' | 'maxBufferedBytes' | 'gatherMs'> & { padding?: string } = {},
) {
  const state = { head: 0, reads: 0 };
  let wake: () => void = () => {};
  const feed = createLiveFeed({
    read: async (_stream, after, limit) => {
      state.reads++;
      // As a read from Postgres would, it lets the event loop turn.
      await new Promise((r) => setImmediate(r));
      const out: { seq: number; body: PlatformEvent }[] = [];
      for (let seq = after + 1; seq <= Math.min(state.head, after + limit); seq++)
        out.push({
          seq,
          body: { type: 'DEVICE_CONNECTED', eventId: String(seq), padding: options.padding } as never,
        });
      return out;
    },
    sign: async (e) => e,
    listen: (w) => ((wake = w), { close: async () => {} }),
    logger: createLogger('silent'),
    ...options,
  });
  const server = createServer((req, res) => {
    const after = Number(req.headers['last-event-id'] ?? 0);
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.write('retry: 2000\n\n');
    feed.watch('client', after, res, 'test');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    feed,
    state,
    port: (server.address() as AddressInfo).port,
    publish(n: number): void {
      state.head += n;
      wake();
    },
    async close(): Promise<void> {
      await feed.close();
      await new Promise((r) => server.close(r));
    },
  };
}
