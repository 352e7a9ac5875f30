import Koa from 'koa';
import type { Registry } from 'prom-client';
import { errorHandler } from './errors';
import { opsRoutes, type ReadinessChecks } from './ops';
import { closeServer, listen } from './server';

/** /metrics, /healthz and /readyz of a role that has no API (gateway, worker). */
export async function startOpsServer(
  host: string,
  port: number,
  registry: Registry,
  checks: ReadinessChecks,
) {
  const app = new Koa();
  app.use(errorHandler());
  const router = opsRoutes(registry, checks);
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  const { server, port: bound } = await listen(app, host, port);
  return { port: bound, stop: () => closeServer(server) };
}
