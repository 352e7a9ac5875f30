import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

interface Connection {
  path: string;
  readonly client: Socket;
  readonly upstream: Socket;
}

/**
 * A TCP proxy in front of a WebSocket server that knows the path each connection asked for and can
 * cut the ones that match, as a network blip cuts one session and not the others.
 */
export async function startWsProxy(target: string) {
  const { hostname, port } = new URL(target);
  const connections = new Set<Connection>();
  /** Paths whose new connections wait, and until when. */
  const held = new Map<(path: string) => boolean, number>();
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    const c: Connection = { path: '', client, upstream };
    connections.add(c);
    const end = () => {
      client.destroy();
      upstream.destroy();
      connections.delete(c);
    };
    for (const s of [client, upstream]) s.on('error', end).on('close', end);
    client.once('data', (first: Buffer) => {
      c.path = /^GET (\S+)/.exec(first.toString('latin1'))?.[1] ?? '';
      client.pause();
      const until = Math.max(0, ...[...held].filter(([matches]) => matches(c.path)).map(([, t]) => t));
      setTimeout(
        () => {
          upstream.write(first);
          client.pipe(upstream);
          upstream.pipe(client);
        },
        Math.max(0, until - Date.now()),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    /** Cuts every connection whose path matches; answers how many. */
    cut(matches: (path: string) => boolean): number {
      let n = 0;
      for (const c of [...connections])
        if (matches(c.path)) {
          c.client.destroy();
          c.upstream.destroy();
          n++;
        }
      return n;
    },
    /** Cuts the matching connections; new ones wait `ms` before they reach the server. */
    hold(matches: (path: string) => boolean, ms: number): void {
      held.set(matches, Date.now() + ms);
      setTimeout(() => held.delete(matches), ms);
      this.cut(matches);
    },
    async close(): Promise<void> {
      for (const c of connections) c.client.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
export type WsProxy = Awaited<ReturnType<typeof startWsProxy>>;
