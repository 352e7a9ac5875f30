import { randomUUID } from 'node:crypto';
import type { DeviceBuses } from '../../src/gateway/device-buses';
import { waitFor } from './system';

/** `count` devices, each on a bus of its own, all in shard 0, held by `buses`: resolves once every session is open. */
export async function holdOwnBuses(
  buses: Pick<DeviceBuses, 'sync' | 'hold' | 'openSessionCount'>,
  count: number,
) {
  const devices = Array.from({ length: count }, () => ({
    deviceId: randomUUID(),
    busId: randomUUID(),
    heardOnBus: null,
  }));
  buses.sync(devices);
  buses.hold(new Set([0]));
  await waitFor(() => buses.openSessionCount() === devices.length, 20_000, 'every session open');
  return devices;
}
