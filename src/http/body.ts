import type { Context } from 'koa';
import { AppError } from '../domain/errors';

export const BODY_LIMIT_BYTES = 64 * 1024;
/** Arrays and objects nested deeper than this are refused (nothing we accept needs more). */
export const MAX_JSON_DEPTH = 32;
/** A NUL, or half of a surrogate pair: Postgres cannot store either in text or jsonb. */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

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
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    throw new AppError(400, 'MALFORMED_JSON', 'the request body is not valid JSON');
  }
  assertStorable(value);
  return value;
}

/**
 * Refuses what parses but could not be stored or written back: nesting beyond MAX_JSON_DEPTH (it
 * would overflow the stack when serialized) and strings or keys Postgres cannot hold, naming the
 * field. Walks without recursion, so any depth is checked safely.
 */
function assertStorable(root: unknown): void {
  const stack: { value: unknown; path: readonly string[] }[] = [{ value: root, path: [] }];
  while (stack.length > 0) {
    const { value, path } = stack.pop()!;
    if (typeof value === 'string') {
      if (UNSTORABLE.test(value)) throw unstorable(path);
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    if (path.length >= MAX_JSON_DEPTH)
      throw new AppError(400, 'JSON_TOO_DEEP', `the body nests deeper than ${MAX_JSON_DEPTH} levels`);
    const entries: [string, unknown][] = Array.isArray(value)
      ? value.map((v, i) => [String(i), v])
      : Object.entries(value);
    for (const [key, v] of entries) {
      if (UNSTORABLE.test(key)) throw unstorable([...path, key]);
      stack.push({ value: v, path: [...path, key] });
    }
  }
}

function unstorable(path: readonly string[]): AppError {
  // The offending characters are shown as U+FFFD: the answer itself must be storable and printable.
  const field = path.join('.').replace(new RegExp(UNSTORABLE.source, 'g'), '\uFFFD') || '(body)';
  return new AppError(400, 'UNSTORABLE_STRING', `${field}: NUL or an unpaired surrogate cannot be stored`, {
    field,
  });
}
