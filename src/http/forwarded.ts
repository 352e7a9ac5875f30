import type { BlockList } from 'node:net';
import { isIP } from 'node:net';
import type { Middleware } from 'koa';
import { addressFamily } from '../domain/addresses';

/** An IPv4 peer on a dual-stack socket shows as `::ffff:a.b.c.d`. */
const unmapped = (ip: string) => ip.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');

/**
 * X-Forwarded-For, -Proto and -Host are believed only on a connection from a trusted proxy's own
 * address: a client that reaches the service directly and sends them is taken at its own address, so
 * it can neither dodge its rate limit nor get another address locked out.
 */
export function forwardedOnlyFrom(trusted: BlockList): Middleware {
  return async (ctx, next) => {
    const peer = unmapped(ctx.req.socket.remoteAddress ?? '');
    if (isIP(peer) === 0 || !trusted.check(peer, addressFamily(peer))) {
      delete ctx.req.headers['x-forwarded-for'];
      delete ctx.req.headers['x-forwarded-proto'];
      delete ctx.req.headers['x-forwarded-host'];
    }
    await next();
  };
}
