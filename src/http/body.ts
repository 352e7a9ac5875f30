import type { Context } from 'koa';
import { AppError } from '../domain/errors';

export const BODY_LIMIT_BYTES = 64 * 1024;

const tooLarge = () => new AppError(413, 'PAYLOAD_TOO_LARGE', `request body over ${BODY_LIMIT_BYTES} bytes`);

/**
 * Reads and parses a JSON request body: 415 unless it is declared JSON (UTF-8), 413 over the limit
 * (checked on the declared length and again while reading), 400 when it does not parse.
 */
export async function readJson(ctx: Context, limit = BODY_LIMIT_BYTES): Promise<unknown> {
  if (!ctx.request.is('application/json', '+json')) {
    throw new AppError(
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      'the body must be JSON (Content-Type: application/json)',
    );
  }
  const charset = ctx.request.charset;
  if (charset && charset.toLowerCase() !== 'utf-8' && charset.toLowerCase() !== 'utf8') {
    throw new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', 'JSON bodies must be UTF-8');
  }
  if (Number(ctx.request.length ?? 0) > limit) {
    ctx.set('Connection', 'close');
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      ctx.set('Connection', 'close');
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new AppError(400, 'MALFORMED_JSON', 'the request body is empty');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AppError(400, 'MALFORMED_JSON', 'the request body is not valid JSON');
  }
}
