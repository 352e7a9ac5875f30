import type Koa from 'koa';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Listens; resolves with the server and the port actually bound (PORT=0 picks a free one). */
export async function listen(
  app: Koa,
  host: string,
  port: number,
): Promise<{ server: Server; port: number }> {
  const server = createServer(app.callback());
  // Slow-loris protection and a bound on every request.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}

export async function closeServer(server: Server): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
