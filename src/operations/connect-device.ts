import type { SessionEffects } from '../domain/effects';
import type { SettingValues } from '../domain/settings';
import type { Db } from '../db/knex';
import { connectDevice, flapPolicy } from '../db/transitions';

/**
 * A disconnected device heard in round n is connected: one compare-and-set with its session,
 * DEVICE_CONNECTED and its connect effects (held while it flaps). Null when it was not disconnected,
 * so racing callers (two gateways, a gateway and the evaluation) connect it once.
 */
export function createConnectDevice(deps: { db: Db; settings: () => Promise<SettingValues> }) {
  return async (deviceId: string, round: number): Promise<SessionEffects | null> => {
    const settings = await deps.settings();
    return connectDevice(deps.db, deviceId, round, {
      automaticRecording: settings['recording.automatic'],
      flap: flapPolicy(settings),
    });
  };
}

export type ConnectDevice = ReturnType<typeof createConnectDevice>;
