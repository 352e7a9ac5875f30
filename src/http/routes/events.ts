import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { z } from 'zod';
import { forbidden, tooManyRequests } from '../../domain/errors';
import { numbered, type NumberedEvent } from '../../domain/events';
import type { ApiOperations } from '../../operations';
import type { LiveFeed } from '../../streams/live-feed';
import type { Authenticator } from '../auth';
import { parseInput } from '../validate';
import { deviceIdParam } from './devices';

export const streamQuery = z.strictObject({ after: z.coerce.number().int().min(0).optional() });
const lastEventId = z.coerce.number().int().min(0);
const kidParam = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'a key id');

/**
 * Live streams one caller may hold at once: a robot its own commands a few times over (a restart
 * overlapping the old connection), an operator address the watchers of a control room and more.
 */
const LIVE_STREAMS_PER_DEVICE = 4;
const LIVE_STREAMS_PER_ADDRESS = 1000;

export const feedQuery = z.strictObject({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

interface EventRouteDeps {
  auth: Authenticator;
  ops: Pick<ApiOperations, 'queries' | 'configure'>;
  sign: (event: NumberedEvent) => Promise<unknown>;
  live: Pick<LiveFeed, 'watch' | 'watchedBy'>;
  /** Operator auth of the pages (HTTP Basic): the fleet page reads the client events with it. */
  pageAuth: Middleware;
}

/** A page of a stream, signed, after `?after=`. */
async function feedPage(deps: EventRouteDeps, stream: string, query: unknown) {
  const q = parseInput(feedQuery, query);
  const rows = await deps.ops.queries.eventStream(stream, q.after, q.limit);
  return {
    stream,
    events: await Promise.all(rows.map((r) => deps.sign(numbered(r.body, stream, r.seq)))),
    // Where to ask from next (the last number given, or `after` when there was nothing new).
    last: rows.at(-1)?.seq ?? q.after,
  };
}

/**
 * A stream live, as Server-Sent Events, resuming exactly after `Last-Event-ID` (what a browser's
 * EventSource sends when it reconnects) or `?after=`.
 */
function watchLive(
  deps: EventRouteDeps,
  ctx: Context,
  stream: string,
  caller: { key: string; max: number },
): void {
  const query = parseInput(streamQuery, ctx.query);
  // Checked and counted in the same turn: two requests at once cannot both take the last place.
  if (deps.live.watchedBy(caller.key) >= caller.max)
    throw tooManyRequests(`at most ${caller.max} live streams at once here; close one first`, 5);
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
  deps.live.watch(stream, after, ctx.res, caller.key);
}

/** The device whose commands are asked for: an operator reads any, a device only its own. */
async function commandsAskedFor(
  deps: EventRouteDeps,
  ctx: Context & { params: Record<string, string> },
): Promise<{ id: string; byDevice: boolean }> {
  const caller = await deps.auth.caller(ctx);
  const id = deviceIdParam(ctx.params.id);
  if (caller.kind === 'device' && caller.deviceId !== id)
    throw forbidden('a device may read only its own commands');
  return { id, byDevice: caller.kind === 'device' };
}

/**
 * The outbox as durable, ordered feeds, numbered per stream (`seq`) at commit and signed as sent on
 * Moth: pages to fetch (a client that sees a number skipped on Moth fetches from the last one it
 * has), and the same live, as Server-Sent Events.
 */
export function eventRoutes(deps: EventRouteDeps): Router {
  const router = new Router();
  const page = (stream: string, query: unknown) => feedPage(deps, stream, query);
  const live = (ctx: Context, stream: string, caller: { key: string; max: number }) =>
    watchLive(deps, ctx, stream, caller);
  const ownCommands = (ctx: Context & { params: Record<string, string> }) => commandsAskedFor(deps, ctx);

  router.get('/events/stream', async (ctx) => {
    await deps.auth.operator(ctx);
    live(ctx, 'client', { key: `operator:${ctx.request.ip}`, max: LIVE_STREAMS_PER_ADDRESS });
  });
  // The same for the fleet page, signed in by HTTP Basic (a browser sends no Bearer token by itself).
  router.get('/admin/events/stream', deps.pageAuth, (ctx) => {
    live(ctx, 'client', { key: `operator:${ctx.request.ip}`, max: LIVE_STREAMS_PER_ADDRESS });
  });
  router.get('/admin/events', deps.pageAuth, async (ctx) => {
    ctx.body = await page('client', ctx.query);
  });

  router.get('/devices/:id/commands/stream', async (ctx) => {
    const { id, byDevice } = await ownCommands(ctx);
    live(
      ctx,
      `device:${id}`,
      byDevice
        ? { key: `device:${id}`, max: LIVE_STREAMS_PER_DEVICE }
        : { key: `operator:${ctx.request.ip}`, max: LIVE_STREAMS_PER_ADDRESS },
    );
  });

  router.get('/events', async (ctx) => {
    await deps.auth.operator(ctx);
    ctx.body = await page('client', ctx.query);
  });

  router.get('/devices/:id/commands', async (ctx) => {
    ctx.body = await page(`device:${(await ownCommands(ctx)).id}`, ctx.query);
  });

  // A new key signs from now on (every process takes it within a second); the old ones stay published.
  router.post('/signing-keys/rotate', async (ctx) => {
    const kid = await deps.ops.configure.rotateSigningKey(await deps.auth.operator(ctx));
    ctx.body = { kid, keys: await deps.ops.queries.signingKeys() };
  });

  // A key revoked is unpublished at once (what it signed no longer verifies) and never used again; the
  // key in use is replaced first. Every process signs with the new one within a minute.
  router.post('/signing-keys/:kid/revoke', async (ctx) => {
    const actor = await deps.auth.operator(ctx);
    await deps.ops.configure.revokeSigningKey(actor, parseInput(kidParam, ctx.params.kid));
    ctx.body = { keys: await deps.ops.queries.signingKeys() };
  });

  router.get('/.well-known/rollcall-keys', async (ctx) => {
    ctx.set('Cache-Control', 'max-age=60');
    ctx.body = { keys: await deps.ops.queries.signingKeys() };
  });
  return router;
}
