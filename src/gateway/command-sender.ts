import type { PlatformEvent } from '../domain/events';
import type { DeviceBuses } from './device-buses';

/**
 * A robot's command goes to its own bus (and the shared one while the robot is still heard there). A
 * robot registered since the directory was last read is looked up first; one deleted since has nobody
 * left to tell.
 */
export function createCommandSender(deps: {
  readonly buses: Pick<DeviceBuses, 'directory' | 'sendToDevice'>;
  readonly syncDirectory: (full?: boolean) => Promise<void>;
}) {
  return async (body: unknown): Promise<void> => {
    const { deviceId } = body as PlatformEvent;
    if (!deviceId) return;
    if (!deps.buses.directory.has(deviceId)) await deps.syncDirectory(true);
    if (deps.buses.directory.has(deviceId)) await deps.buses.sendToDevice(deviceId, body);
  };
}
