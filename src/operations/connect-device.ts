import type { SessionEffects } from '../domain/effects';
import type { SettingValues } from '../domain/settings';
import type { Db } from '../db/knex';
import { flapPolicy } from '../domain/flapping';
import { connectDevices, type Heard } from '../db/transitions';

/**
 * Disconnected devices heard (a first or recovered heartbeat) are connected, many in one transaction:
 * each a compare-and-set with its session, DEVICE_CONNECTED and its connect effects (held while it
 * flaps). Devices that were not disconnected are left out, so racing callers (two gateways, a gateway
 * and the evaluation) connect each once.
 */
export function createConnectDevices(deps: { db: Db; settings: () => Promise<SettingValues> }) {
  return async (heard: readonly Heard[]): Promise<SessionEffects[]> => {
    if (heard.length === 0) return [];
    const settings = await deps.settings();
    return connectDevices(deps.db, heard, {
      automaticRecording: settings['recording.automatic'],
      flap: flapPolicy(settings),
    });
  };
}

/** One device: null when it was not disconnected. */
export function createConnectDevice(deps: { db: Db; settings: () => Promise<SettingValues> }) {
  const connect = createConnectDevices(deps);
  return async (deviceId: string, round: number): Promise<SessionEffects | null> =>
    (await connect([{ deviceId, round }]))[0] ?? null;
}

export type ConnectDevices = ReturnType<typeof createConnectDevices>;
export type ConnectDevice = ReturnType<typeof createConnectDevice>;
