import { randomUUID } from 'node:crypto';
import {
  hashSecret,
  newBusId,
  newToken,
  secretMatches,
  tokenHash,
  type SecretHash,
} from '../domain/credentials';
import type { Registration } from '../domain/device';
import { AppError, conflict, tooManyAttempts } from '../domain/errors';
import { clientEvent } from '../domain/events';
import { countLiveDevices, insertDeviceWithEvent, type Device } from '../db/devices';
import type { SettingValues } from '../domain/settings';
import { isUniqueViolation, type Db } from '../db/knex';
import type { AttemptLimiter } from '../redis/rate-limit';

export interface RegisterDeviceDeps {
  readonly db: Db;
  /** The stored registration secret, if one is set. */
  readonly registrationSecret: () => Promise<SecretHash | undefined>;
  readonly badSecrets: AttemptLimiter;
  readonly countAuthFailure: (surface: 'registration') => void;
  readonly settings: () => Promise<SettingValues>;
}

const MAX_BAD_SECRETS_MESSAGE = 'too many registrations with a wrong secret from this address';

/**
 * A device registers with the registration secret: checked in constant time against its stored
 * hash, with wrong secrets counted per address. It gets a token (stored only as a hash) and a bus of
 * its own; the device row and DEVICE_REGISTERED commit together.
 */
export function createRegisterDevice(deps: RegisterDeviceDeps) {
  async function checkSecret(given: string, address: string): Promise<void> {
    const stored = await deps.registrationSecret();
    // Without a stored secret the comparison still runs, so timing does not reveal the configuration.
    const valid = secretMatches(given, stored ?? hashSecret(randomUUID())) && Boolean(stored);
    // Either way one step in Redis, after the comparison: a bad secret is counted as it is answered
    // (only the first 10 of a window hear 401, however many come at once), a good one is refused
    // while its address is blocked.
    if (!valid) deps.countAuthFailure('registration');
    const retryAfter = valid
      ? await deps.badSecrets.blockedFor(address)
      : await deps.badSecrets.fail(address);
    if (retryAfter > 0) throw tooManyAttempts(MAX_BAD_SECRETS_MESSAGE, retryAfter);
    if (!valid) throw new AppError(401, 'INVALID_SECRET_KEY', 'the registration secret key is not valid');
  }

  return async (body: Registration, address: string): Promise<{ device: Device; token: string }> => {
    await checkSecret(body.secretKey, address);
    // A soft cap: registrations in flight at once may pass it by as many.
    const limit = (await deps.settings())['device.maxDevices'];
    if ((await countLiveDevices(deps.db)) >= limit)
      throw conflict('DEVICE_LIMIT_REACHED', `at most ${limit} devices (setting device.maxDevices)`, {
        limit,
      });
    const token = newToken();
    const id = randomUUID();
    try {
      const device = await insertDeviceWithEvent(
        deps.db,
        {
          id,
          name: body.name,
          tokenHash: tokenHash(token),
          busId: newBusId(),
          tracks: body.tracks,
          actions: body.actions,
          group: body.group ?? null,
        },
        clientEvent('DEVICE_REGISTERED', id, { name: body.name }),
      );
      return { device, token };
    } catch (err) {
      if (isUniqueViolation(err, 'devices_name_live_unique')) {
        throw conflict('DEVICE_NAME_TAKEN', `a device named "${body.name}" is already registered`, {
          field: 'name',
        });
      }
      throw err;
    }
  };
}
