import type Koa from 'koa';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

/**
 * Listens, over HTTPS when a certificate and key are given; resolves with the server and the port
 * actually bound (port 0 picks a free one).
 */
export async function listen(
  app: Koa,
  host: string,
  port: number,
  tls: { TLS_CERT_FILE?: string | undefined; TLS_KEY_FILE?: string | undefined } = {},
): Promise<{ server: Server; port: number }> {
  const server =
    tls.TLS_CERT_FILE && tls.TLS_KEY_FILE
      ? createHttpsServer(
          { cert: readFileSync(tls.TLS_CERT_FILE), key: readFileSync(tls.TLS_KEY_FILE) },
          app.callback(),
        )
      : createServer(app.callback());
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
