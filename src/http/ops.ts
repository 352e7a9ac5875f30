import Router from '@koa/router';
import type { Registry } from 'prom-client';

/** A named readiness check: resolves when the dependency answers, rejects otherwise. */
export type ReadinessChecks = Record<string, () => Promise<unknown>>;

const within = <T>(ms: number, p: Promise<T>) =>
  Promise.race([
    p,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms)),
  ]);

/**
 * `/metrics` (Prometheus text), `/healthz` (the process answers) and `/readyz` (every dependency
 * answers; 503 naming the failing ones).
 */
export function opsRoutes(registry: Registry, checks: ReadinessChecks): Router {
  const router = new Router();
  router.get('/metrics', async (ctx) => {
    ctx.set('Content-Type', registry.contentType);
    ctx.body = await registry.metrics();
  });
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const results = await Promise.all(
      Object.entries(checks).map(async ([name, check]) => {
        try {
          await within(2000, check());
          return [name, 'ok'] as const;
        } catch (err) {
          return [name, (err as Error).message || 'failed'] as const;
        }
      }),
    );
    const failing = results.filter(([, r]) => r !== 'ok').map(([n]) => n);
    ctx.status = failing.length === 0 ? 200 : 503;
    ctx.body =
      failing.length === 0
        ? { status: 'ready', checks: Object.fromEntries(results) }
        : {
            error: {
              code: 'NOT_READY',
              message: `not ready: ${failing.join(', ')}`,
              details: Object.fromEntries(results),
            },
          };
  });
  return router;
}
