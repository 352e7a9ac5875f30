import type { Middleware } from 'koa';
import { AppError } from '../domain/errors';

interface HttpLikeError {
  status?: number;
  statusCode?: number;
  expose?: boolean;
  message?: string;
  headers?: Record<string, string>;
}

const CODE_BY_STATUS: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  501: 'NOT_IMPLEMENTED',
};

/** Failures of a dependency (Postgres, Redis): the client did nothing wrong, it may retry. */
function isUnavailable(err: unknown): boolean {
  const e = err as { name?: string; code?: string; message?: string };
  return (
    e?.name === 'KnexTimeoutError' ||
    e?.name === 'MaxRetriesPerRequestError' ||
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', '57P01', '57P03'].includes(e?.code ?? '') ||
    /Connection is closed|enableOfflineQueue/.test(e?.message ?? '')
  );
}

/**
 * Placed first: turns every error into `{"error":{"code","message","details"}}`. Client errors keep
 * their status; anything unexpected is a 500 whose details stay in the log (via `app.on('error')`).
 */
export function errorHandler(): Middleware {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        throw new AppError(404, 'ROUTE_NOT_FOUND', `no route for ${ctx.method} ${ctx.path}`);
      }
    } catch (err) {
      const e = err as HttpLikeError;
      const status = e.status ?? e.statusCode;
      let body: { code: string; message: string; details?: unknown };
      if (err instanceof AppError) {
        ctx.status = err.status;
        body = { code: err.code, message: err.message, details: err.details };
        if (err.headers) ctx.set(err.headers);
      } else if (status && status >= 400 && status < 500 && e.expose !== false) {
        ctx.status = status;
        body = { code: CODE_BY_STATUS[status] ?? 'BAD_REQUEST', message: e.message ?? 'bad request' };
        if (e.headers) ctx.set(e.headers);
      } else if (status === 501 || status === 405) {
        ctx.status = status;
        body = { code: CODE_BY_STATUS[status]!, message: e.message ?? 'not supported' };
      } else if (isUnavailable(err)) {
        ctx.status = 503;
        ctx.set('Retry-After', '1');
        body = { code: 'SERVICE_UNAVAILABLE', message: 'a backing service is unavailable, retry shortly' };
        ctx.app.emit('error', err, ctx);
      } else {
        ctx.status = 500;
        body = { code: 'INTERNAL_ERROR', message: 'internal error' };
        ctx.app.emit('error', err, ctx);
      }
      ctx.body = { error: body };
    }
  };
}
