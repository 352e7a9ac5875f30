import { clientEvent } from '../domain/events';
import type { SessionEffects } from '../domain/effects';
import { lockLiveDevice, markDeviceDeleted, tokenHashOf } from '../db/devices';
import { recordAudit } from '../db/audit';
import type { Db } from '../db/knex';
import type { Actor } from '../domain/operators';
import { appendEvents } from '../db/outbox';
import type { Metrics } from '../metrics';
import { deviceNotFound } from './device-errors';
import { createDisconnectDevices } from './disconnect-devices';
import type { TokenCache } from './rotate-tokens';

/**
 * An operator deletes a device: a connected one is disconnected as DELETED (its effects run), the
 * row is marked deleted with DEVICE_DELETED, and its token stops working at once (revoked in the
 * heartbeat cache before the commit: if Redis cannot take it, nothing changes).
 */
export function createDeleteDevice(deps: {
  db: Db;
  liveness: TokenCache & { forgetDevice(deviceId: string): Promise<void> };
  enqueueEffects: (d: readonly SessionEffects[]) => Promise<void>;
  metrics: Pick<Metrics, 'transitions' | 'disconnects'>;
}) {
  const disconnectDevices = createDisconnectDevices(deps);
  return async (actor: Actor, id: string): Promise<void> => {
    const disconnected = await deps.db.transaction(async (trx) => {
      const device = await lockLiveDevice(trx, id);
      if (!device) throw deviceNotFound();
      const hash = (await tokenHashOf(trx, id))!;
      const ended =
        device.status === 'CONNECTED'
          ? await disconnectDevices(
              trx,
              [
                {
                  deviceId: id,
                  beforeRound: null,
                  missedRounds: 0,
                  lastRoundHeard: null,
                  lastHeartbeatAt: null,
                },
              ],
              'DELETED',
            )
          : [];
      await markDeviceDeleted(trx, id);
      await appendEvents(trx, [clientEvent('DEVICE_DELETED', id, { name: device.name })]);
      await recordAudit(trx, actor, [
        { action: 'device.deleted', target: id, before: { name: device.name, status: device.status } },
      ]);
      await deps.liveness.forgetToken(id, hash);
      return ended;
    });
    // Committed: the rest is best effort (a stale index entry is harmless, the sweeper enqueues effects).
    await deps.liveness.forgetDevice(id).catch(() => {});
    await deps.enqueueEffects(disconnected).catch(() => {});
  };
}
