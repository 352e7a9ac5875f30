import type { SessionEffects } from '../domain/effects';
import { inMaintenance } from '../db/devices';
import type { Db } from '../db/knex';
import { createDisconnectDevices } from './disconnect-devices';
import type { Metrics } from '../metrics';
import type { Claimed } from '../redis/liveness';

/**
 * Disconnects claimed silent devices: each a compare-and-set that ends its session with
 * DEVICE_DISCONNECTED and its effect rows. A device in maintenance ends as MAINTENANCE, with no effect
 * but stopping its recordings (when its window says so): no task aborted, not counted as a failure.
 */
export function createDisconnectBatch(deps: { db: Db; metrics: Metrics; now?: () => number }) {
  const now = deps.now ?? Date.now;
  const disconnectDevices = createDisconnectDevices(deps);
  return async (claimed: readonly Claimed[]): Promise<readonly SessionEffects[]> => {
    const candidates = claimed.map((c) => ({
      deviceId: c.deviceId,
      beforeRound: c.lastRound + 1,
      missedRounds: c.missedRounds,
      lastRoundHeard: c.lastRound,
      lastHeartbeatAt: c.lastSeenMs === null ? null : new Date(c.lastSeenMs),
    }));
    const maintenance = await inMaintenance(
      deps.db,
      claimed.map((c) => c.deviceId),
    );
    const failed = await disconnectDevices(
      deps.db,
      candidates.filter((c) => !maintenance.has(c.deviceId)),
      'MISSED_HEARTBEATS',
    );
    const expected: SessionEffects[] = [
      ...(await disconnectDevices(
        deps.db,
        candidates.filter((c) => maintenance.get(c.deviceId) === true),
        'MAINTENANCE',
        ['stop-recording'],
      )),
      ...(await disconnectDevices(
        deps.db,
        candidates.filter((c) => maintenance.get(c.deviceId) === false),
        'MAINTENANCE',
        [],
      )),
    ];
    const { metrics } = deps;
    const t = now();
    const lastSeen = new Map(claimed.map((c) => [c.deviceId, c.lastSeenMs]));
    for (const d of failed) {
      const seen = lastSeen.get(d.deviceId);
      if (seen != null) metrics.detectionSeconds.observe((t - seen) / 1000);
    }
    return [...failed, ...expected];
  };
}
