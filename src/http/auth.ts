import type { Context } from 'koa';
import type { Caller } from '../domain/caller';
import { tokenHash } from '../domain/credentials';
import { operatorLabel, type Actor, type OperatorToken } from '../domain/operators';
import { forbidden, tooManyAttempts, tooManyRequests, unauthorized, type AppError } from '../domain/errors';
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
 * Wrong operator credentials, limited per address across every web replica: after the limit, a wrong
 * one from the address hears 429 for the rest of the window. A lockout only protects: the right admin
 * token is never refused for it (an operator behind the same address as a guesser, or a NAT full of
 * robots with stale tokens, keeps working), nor is a device token (256 random bits: a robot must not
 * lose its API because a neighbour guessed), and a valid device token on an operator route is no
 * guess (403, not counted). The price: a guess that is right is answered as right, blocked or not, so
 * the admin token's own strength (at least 32 characters; 32 random bytes recommended) is what stands
 * against guessing; the limit stops a flood early and counts it.
 */
export interface CredentialGuard {
  /** Whether the address is past its limit (a wrong credential from it hears 429). */
  blocked(ctx: Context): Promise<boolean>;
  /** A presented credential was wrong: counted; 429 once beyond the limit, else `error`. */
  refuse(ctx: Context, surface: AuthSurface, error: AppError): Promise<never>;
}

export function createCredentialGuard(
  limiter: AttemptLimiter,
  countFailure: (surface: AuthSurface) => void,
): CredentialGuard {
  return {
    async blocked(ctx) {
      return (await limiter.blockedFor(ctx.request.ip)) > 0;
    },
    async refuse(ctx, surface, error) {
      countFailure(surface);
      const wait = await limiter.fail(ctx.request.ip);
      throw wait > 0 ? tooManyAttempts(MAX_BAD_CREDENTIALS_MESSAGE, wait) : error;
    },
  };
}

export interface Authenticator {
  /** The operator (an operator token) or a device (its own token); 401 otherwise. */
  caller(ctx: Context): Promise<Caller>;
  /** An operator only, as the audit log names them (their token's label, their address); 401 otherwise. */
  operator(ctx: Context): Promise<Actor>;
}

/** The operator tokens, or the one admin token (labelled `admin`). */
export const asOperatorTokens = (tokens: string | readonly OperatorToken[]): readonly OperatorToken[] =>
  typeof tokens === 'string' ? [{ label: 'admin', token: tokens }] : tokens;

export function createAuthenticator(
  operatorTokens: string | readonly OperatorToken[],
  deviceIdByTokenHash: (hash: string) => Promise<string | undefined>,
  guard: CredentialGuard,
  /** Counts a device's request: 0 within its rate, else the seconds until it may ask again. */
  deviceRequest: (deviceId: string) => Promise<number> = async () => 0,
): Authenticator {
  const operators = asOperatorTokens(operatorTokens);
  return {
    async operator(ctx) {
      const token = bearerToken(ctx);
      // No credential at all is not a guess: only a presented one is counted.
      if (token === undefined) throw unauthorized();
      const label = operatorLabel(operators, token);
      if (label !== undefined) return { label, address: ctx.request.ip };
      // A flood of wrong tokens from a blocked address is answered without a lookup.
      if (!(await guard.blocked(ctx)) && (await deviceIdByTokenHash(tokenHash(token))))
        throw forbidden('a device token does not open operator routes');
      return guard.refuse(ctx, 'api', unauthorized());
    },
    async caller(ctx) {
      const token = bearerToken(ctx, OPERATOR_OR_DEVICE);
      if (!token) throw unauthorized();
      const label = operatorLabel(operators, token);
      if (label !== undefined) return { kind: 'operator', label, address: ctx.request.ip };
      // Looked up by hash: the token itself is never stored, and a DB index lookup leaks no timing
      // about the token beyond what its hash reveals.
      const deviceId = await deviceIdByTokenHash(tokenHash(token));
      if (!deviceId) return guard.refuse(ctx, 'api', unauthorized());
      // Per device, not per address: robots behind one NAT do not share a rate.
      const wait = await deviceRequest(deviceId);
      if (wait > 0) throw tooManyRequests('too many requests from this device', wait);
      return { kind: 'device', deviceId };
    },
  };
}
