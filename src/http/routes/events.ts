import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { forbidden } from '../../domain/errors';
import { numbered, type NumberedEvent } from '../../domain/events';
import type { ApiOperations } from '../../operations';
import type { LiveFeed } from '../../streams/live-feed';
import type { Authenticator } from '../auth';
import { parseInput } from '../validate';
import { deviceIdParam } from './devices';

export const streamQuery = z.strictObject({ after: z.coerce.number().int().min(0).optional() });
const lastEventId = z.coerce.number().int().min(0);
const kidParam = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'a key id');

export const feedQuery = z.strictObject({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

/**
 * The outbox as durable, ordered feeds, numbered per stream (`seq`) at commit and signed as sent on
 * Moth: pages to fetch (a client that sees a number skipped on Moth fetches from the last one it
 * has), and the same live, as Server-Sent Events.
 */
export function eventRoutes(deps: {
  auth: Authenticator;
  ops: Pick<ApiOperations, 'queries' | 'configure'>;
  sign: (event: NumberedEvent) => Promise<unknown>;
  live: Pick<LiveFeed, 'watch'>;
}): Router {
  const router = new Router();
  const page = async (stream: string, query: unknown) => {
    const q = parseInput(feedQuery, query);
    const rows = await deps.ops.queries.eventStream(stream, q.after, q.limit);
    return {
      stream,
      events: await Promise.all(rows.map((r) => deps.sign(numbered(r.body, stream, r.seq)))),
      // Where to ask from next (the last number given, or `after` when there was nothing new).
      last: rows.at(-1)?.seq ?? q.after,
    };
  };

  /**
   * A stream live, as Server-Sent Events, resuming exactly after `Last-Event-ID` (what a browser's
   * EventSource sends when it reconnects) or `?after=`.
   */
  const live = (ctx: Context, stream: string) => {
    const query = parseInput(streamQuery, ctx.query);
    const header = ctx.get('Last-Event-ID');
    // A reconnecting EventSource sends the last id it had: that wins over the first request's `after`.
    const after = header !== '' ? parseInput(lastEventId, header) : (query.after ?? 0);
    ctx.req.socket.setTimeout(0);
    ctx.req.socket.setNoDelay(true);
    ctx.respond = false;
    ctx.res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      // nginx would otherwise buffer the stream.
      'X-Accel-Buffering': 'no',
    });
    ctx.res.write('retry: 2000\n\n');
    deps.live.watch(stream, after, ctx.res);
  };

  router.get('/events/stream', async (ctx) => {
    await deps.auth.operator(ctx);
    live(ctx, 'client');
  });

  router.get('/devices/:id/commands/stream', async (ctx) => {
    live(ctx, `device:${await ownCommands(ctx)}`);
  });

  router.get('/events', async (ctx) => {
    await deps.auth.operator(ctx);
    ctx.body = await page('client', ctx.query);
  });

  /** The device whose commands are asked for: an operator reads any, a device only its own. */
  async function ownCommands(ctx: Context & { params: Record<string, string> }): Promise<string> {
    const caller = await deps.auth.caller(ctx);
    const id = deviceIdParam(ctx.params.id);
    if (caller.kind === 'device' && caller.deviceId !== id)
      throw forbidden('a device may read only its own commands');
    return id;
  }

  router.get('/devices/:id/commands', async (ctx) => {
    ctx.body = await page(`device:${await ownCommands(ctx)}`, ctx.query);
  });

  // A new key signs from now on (every process takes it within a minute); the old ones stay published.
  router.post('/signing-keys/rotate', async (ctx) => {
    await deps.auth.operator(ctx);
    const kid = await deps.ops.configure.rotateSigningKey();
    ctx.body = { kid, keys: await deps.ops.queries.signingKeys() };
  });

  // A key revoked is unpublished at once (what it signed no longer verifies) and never used again; the
  // key in use is replaced first. Every process signs with the new one within a minute.
  router.post('/signing-keys/:kid/revoke', async (ctx) => {
    await deps.auth.operator(ctx);
    await deps.ops.configure.revokeSigningKey(parseInput(kidParam, ctx.params.kid));
    ctx.body = { keys: await deps.ops.queries.signingKeys() };
  });

  router.get('/.well-known/rollcall-keys', async (ctx) => {
    ctx.set('Cache-Control', 'max-age=60');
    ctx.body = { keys: await deps.ops.queries.signingKeys() };
  });
  return router;
}
