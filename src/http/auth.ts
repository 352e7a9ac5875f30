import type { Context } from 'koa';
import { constantTimeEqual, tokenHash } from '../domain/credentials';
import { unauthorized } from '../domain/errors';

export type Caller = { kind: 'operator' } | { kind: 'device'; deviceId: string };

/** The token of `Authorization: Bearer <token>`, or of `Device <token>` (TeamGRIT's robots send that). */
export function bearerToken(ctx: Context, schemes = /^Bearer$/i): string | undefined {
  const match = /^(\S+)[ ]+(\S+)\s*$/.exec(ctx.get('authorization'));
  return match && schemes.test(match[1]!) ? match[2] : undefined;
}

const OPERATOR_OR_DEVICE = /^(Bearer|Device)$/i;

export interface Authenticator {
  /** The operator (admin token) or a device (its own token); 401 otherwise. */
  caller(ctx: Context): Promise<Caller>;
  /** The operator only; 401 otherwise. */
  operator(ctx: Context): void;
}

export function createAuthenticator(
  adminToken: string,
  deviceIdByTokenHash: (hash: string) => Promise<string | undefined>,
): Authenticator {
  const isAdmin = (token: string | undefined) => token !== undefined && constantTimeEqual(token, adminToken);
  return {
    operator(ctx) {
      if (!isAdmin(bearerToken(ctx))) throw unauthorized();
    },
    async caller(ctx) {
      const token = bearerToken(ctx, OPERATOR_OR_DEVICE);
      if (!token) throw unauthorized();
      if (isAdmin(token)) return { kind: 'operator' };
      // Looked up by hash: the token itself is never stored, and a DB index lookup leaks no timing
      // about the token beyond what its hash reveals.
      const deviceId = await deviceIdByTokenHash(tokenHash(token));
      if (!deviceId) throw unauthorized();
      return { kind: 'device', deviceId };
    },
  };
}
