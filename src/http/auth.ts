import type { Context } from 'koa';
import { constantTimeEqual, tokenHash } from '../domain/credentials';
import { unauthorized } from '../domain/errors';

export type Caller = { kind: 'operator' } | { kind: 'device'; deviceId: string };

export function bearerToken(ctx: Context): string | undefined {
  const header = ctx.get('authorization');
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

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
      const token = bearerToken(ctx);
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
