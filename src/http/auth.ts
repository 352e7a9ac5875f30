import type { Context } from 'koa';
import type { Caller } from '../domain/caller';
import { constantTimeEqual, tokenHash } from '../domain/credentials';
import { tooManyAttempts, unauthorized, type AppError } from '../domain/errors';
import type { AttemptLimiter } from '../redis/rate-limit';

export type { Caller };

/** Where a credential was refused: the registration secret, a Bearer token on the API, the operator pages. */
export type AuthSurface = 'registration' | 'api' | 'pages';

/** The token of `Authorization: Bearer <token>`, or of `Device <token>` (TeamGRIT's robots send that). */
export function bearerToken(ctx: Context, schemes = /^Bearer$/i): string | undefined {
  const match = /^(\S+)[ ]+(\S+)\s*$/.exec(ctx.get('authorization'));
  return match && schemes.test(match[1]!) ? match[2] : undefined;
}

const OPERATOR_OR_DEVICE = /^(Bearer|Device)$/i;
const MAX_BAD_CREDENTIALS_MESSAGE = 'too many wrong credentials from this address';

/**
 * Wrong operator credentials, limited per address across every web replica: after the limit, the
 * address hears 429 for the rest of the window, even with the right admin token (so a guess that
 * comes in while blocked cannot be told from a wrong one). Device tokens are never refused for it:
 * they are 256 random bits, and a robot must not lose its API because a neighbour behind the same
 * address guessed.
 */
export interface CredentialGuard {
  /** Before the admin token is accepted: 429 while the address is blocked. */
  admit(ctx: Context): Promise<void>;
  /** A presented credential was wrong: counted; 429 once beyond the limit, else `error`. */
  refuse(ctx: Context, surface: AuthSurface, error: AppError): Promise<never>;
}

export function createCredentialGuard(
  limiter: AttemptLimiter,
  countFailure: (surface: AuthSurface) => void,
): CredentialGuard {
  return {
    async admit(ctx) {
      const wait = await limiter.blockedFor(ctx.request.ip);
      if (wait > 0) throw tooManyAttempts(MAX_BAD_CREDENTIALS_MESSAGE, wait);
    },
    async refuse(ctx, surface, error) {
      countFailure(surface);
      const wait = await limiter.fail(ctx.request.ip);
      throw wait > 0 ? tooManyAttempts(MAX_BAD_CREDENTIALS_MESSAGE, wait) : error;
    },
  };
}

export interface Authenticator {
  /** The operator (admin token) or a device (its own token); 401 otherwise. */
  caller(ctx: Context): Promise<Caller>;
  /** The operator only; 401 otherwise. */
  operator(ctx: Context): Promise<void>;
}

export function createAuthenticator(
  adminToken: string,
  deviceIdByTokenHash: (hash: string) => Promise<string | undefined>,
  guard: CredentialGuard,
): Authenticator {
  const isAdmin = (token: string) => constantTimeEqual(token, adminToken);
  return {
    async operator(ctx) {
      const token = bearerToken(ctx);
      // No credential at all is not a guess: only a presented one is counted.
      if (token === undefined) throw unauthorized();
      if (!isAdmin(token)) await guard.refuse(ctx, 'api', unauthorized());
      await guard.admit(ctx);
    },
    async caller(ctx) {
      const token = bearerToken(ctx, OPERATOR_OR_DEVICE);
      if (!token) throw unauthorized();
      if (isAdmin(token)) {
        await guard.admit(ctx);
        return { kind: 'operator' };
      }
      // Looked up by hash: the token itself is never stored, and a DB index lookup leaks no timing
      // about the token beyond what its hash reveals.
      const deviceId = await deviceIdByTokenHash(tokenHash(token));
      if (!deviceId) return guard.refuse(ctx, 'api', unauthorized());
      return { kind: 'device', deviceId };
    },
  };
}
