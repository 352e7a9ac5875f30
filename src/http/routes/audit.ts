import Router from '@koa/router';
import { z } from 'zod';
import type { ApiOperations } from '../../operations';
import type { Authenticator } from '../auth';
import { parseInput } from '../validate';

export const auditQuery = z.strictObject({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  /** Only what was done to this device, group, webhook or key. */
  target: z.string().min(1).max(200).optional(),
});

/** What operators changed, in the order they changed it: who, what, when, from where, before and after. */
export function auditRoutes(deps: { auth: Authenticator; ops: Pick<ApiOperations, 'queries'> }): Router {
  const router = new Router();
  router.get('/audit', async (ctx) => {
    await deps.auth.operator(ctx);
    const q = parseInput(auditQuery, ctx.query);
    const entries = await deps.ops.queries.audit(q);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { entries, last: entries.at(-1)?.id ?? q.after };
  });
  return router;
}
