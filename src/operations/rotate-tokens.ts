import { newToken, tokenHash } from '../domain/credentials';
import { clientEvent } from '../domain/events';
import { replaceTokenHash, replaceTokenHashes, tokenHashOf, type RotationFilter } from '../db/devices';
import { recordAudit } from '../db/audit';
import type { Db } from '../db/knex';
import type { Actor } from '../domain/operators';
import { appendEvents } from '../db/outbox';
import { deviceNotFound } from './device-errors';

/** The gateways' cache of token hashes: a revoked token must stop working at once. */
export interface TokenCache {
  forgetToken(deviceId: string, tokenHash: string): Promise<void>;
  forgetTokens(revoked: readonly { deviceId: string; tokenHash: string }[]): Promise<void>;
}

/**
 * New tokens for one device or many, each old one revoked in the heartbeat cache before the commit
 * (if Redis cannot take it, nothing changes), with DEVICE_TOKEN_ROTATED. The new tokens are in the
 * answer only: stored as hashes.
 */
export function createRotateTokens(deps: { db: Db; liveness: TokenCache }) {
  return {
    async one(actor: Actor, id: string): Promise<string> {
      const token = newToken();
      await deps.db.transaction(async (trx) => {
        const old = await tokenHashOf(trx, id, { lock: true });
        if (!old) throw deviceNotFound();
        await replaceTokenHash(trx, id, tokenHash(token));
        await appendEvents(trx, [clientEvent('DEVICE_TOKEN_ROTATED', id)]);
        await recordAudit(trx, actor, [{ action: 'device.token_rotated', target: id }]);
        await deps.liveness.forgetToken(id, old);
      });
      return token;
    },

    async many(actor: Actor, filter: RotationFilter): Promise<{ id: string; name: string; token: string }[]> {
      const tokens = new Map<string, string>();
      const rotated = await deps.db.transaction(async (trx) => {
        const changed = await replaceTokenHashes(trx, filter, (id) => {
          const token = newToken();
          tokens.set(id, token);
          return tokenHash(token);
        });
        await appendEvents(
          trx,
          changed.map((d) => clientEvent('DEVICE_TOKEN_ROTATED', d.id)),
        );
        await recordAudit(
          trx,
          actor,
          changed.map((d) => ({ action: 'device.token_rotated', target: d.id, after: { filter } })),
        );
        await deps.liveness.forgetTokens(changed.map((d) => ({ deviceId: d.id, tokenHash: d.oldHash })));
        return changed;
      });
      return rotated.map((d) => ({ id: d.id, name: d.name, token: tokens.get(d.id)! }));
    },
  };
}
