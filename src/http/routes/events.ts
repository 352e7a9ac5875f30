import Router from '@koa/router';
import { z } from 'zod';
import { forbidden } from '../../domain/errors';
import type { PlatformEvent } from '../../domain/events';
import type { ApiOperations } from '../../operations';
import type { Authenticator } from '../auth';
import { parseInput } from '../validate';
import { deviceIdParam } from './devices';

export const feedQuery = z.strictObject({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

/**
 * The outbox as durable, ordered feeds: what was sent on Moth, numbered per stream (`seq`), signed as
 * sent. A client that sees a number skipped on Moth fetches from the last one it has.
 */
export function eventRoutes(deps: {
  auth: Authenticator;
  ops: Pick<ApiOperations, 'queries' | 'configure'>;
  sign: (event: PlatformEvent & { seq: number }) => Promise<unknown>;
}): Router {
  const router = new Router();
  const page = async (stream: string, query: unknown) => {
    const q = parseInput(feedQuery, query);
    const rows = await deps.ops.queries.eventStream(stream, q.after, q.limit);
    return {
      stream,
      events: await Promise.all(rows.map((r) => deps.sign({ ...r.body, seq: r.seq }))),
      // Where to ask from next (the last number given, or `after` when there was nothing new).
      last: rows.at(-1)?.seq ?? q.after,
    };
  };

  router.get('/events', async (ctx) => {
    await deps.auth.operator(ctx);
    ctx.body = await page('client', ctx.query);
  });

  router.get('/devices/:id/commands', async (ctx) => {
    const caller = await deps.auth.caller(ctx);
    const id = deviceIdParam(ctx.params.id);
    if (caller.kind === 'device' && caller.deviceId !== id)
      throw forbidden('a device may read only its own commands');
    ctx.body = await page(`device:${id}`, ctx.query);
  });

  // A new key signs from now on (every process takes it within a minute); the old ones stay published.
  router.post('/signing-keys/rotate', async (ctx) => {
    await deps.auth.operator(ctx);
    const kid = await deps.ops.configure.rotateSigningKey();
    ctx.body = { kid, keys: await deps.ops.queries.signingKeys() };
  });

  router.get('/.well-known/rollcall-keys', async (ctx) => {
    ctx.set('Cache-Control', 'max-age=60');
    ctx.body = { keys: await deps.ops.queries.signingKeys() };
  });
  return router;
}
