/**
 * An error meant for the client: the HTTP layer turns it into
 * `{"error":{"code","message","details"}}` with its status.
 */
export class AppError extends Error {
  override name = 'AppError';
  readonly expose = true;
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(message);
  }
}

export interface FieldIssue {
  /** Dotted path of the offending field, e.g. `tracks.1.type`. */
  readonly field: string;
  readonly message: string;
}

export const validationFailed = (issues: readonly FieldIssue[]) =>
  new AppError(
    400,
    'VALIDATION_FAILED',
    `invalid input: ${issues.map((i) => i.field || '(body)').join(', ')}`,
    {
      issues,
    },
  );

export const unauthorized = (message = 'missing or invalid bearer token') =>
  new AppError(401, 'UNAUTHORIZED', message, undefined, { 'WWW-Authenticate': 'Bearer' });

/** 429 with Retry-After: an address that failed too often waits out its window. */
/** A caller past its rate: what it asks is not done; it may ask again after the window. */
export const tooManyRequests = (message: string, retryAfterSeconds: number) =>
  new AppError(
    429,
    'TOO_MANY_REQUESTS',
    message,
    { retryAfterSeconds },
    { 'Retry-After': String(retryAfterSeconds) },
  );

export const tooManyAttempts = (message: string, retryAfterSeconds: number) =>
  new AppError(
    429,
    'TOO_MANY_ATTEMPTS',
    message,
    { retryAfterSeconds },
    { 'Retry-After': String(retryAfterSeconds) },
  );

export const forbidden = (message: string) => new AppError(403, 'FORBIDDEN', message);

export const notFound = (code: string, message: string) => new AppError(404, code, message);

export const conflict = (code: string, message: string, details?: unknown) =>
  new AppError(409, code, message, details);
