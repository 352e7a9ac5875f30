import { hashSecret, type SecretHash } from './domain/credentials';
import {
  planSettingsChange,
  presentSettings,
  resolveSettings,
  type SettingValues,
  type SettingsPatch,
} from './domain/settings';
import type { Db } from './db/knex';
import { readSecretHash, readStoredSettings, storeSecretHash, writeSettings } from './db/settings';

export interface SettingsService {
  /** The current values, read from Postgres (the source of truth shared by every process). */
  current(): Promise<SettingValues>;
  /** The public shape of `/server-settings`. */
  present(): Promise<ReturnType<typeof presentSettings>>;
  /** Applies a validated merge patch in one transaction, then tells the listeners. */
  apply(patch: SettingsPatch): Promise<void>;
  /**
   * The stored registration secret (its salted hash), read at most once per SECRET_CACHE_MS: every
   * registration needs it. A change made through this process applies at once; one made elsewhere
   * within SECRET_CACHE_MS.
   */
  registrationSecret(): Promise<SecretHash | undefined>;
}

/** How long a replica may keep using the registration secret it read. */
export const SECRET_CACHE_MS = 1000;

export function createSettingsService(
  db: Db,
  onChange: (values: SettingValues) => Promise<void>,
): SettingsService {
  const current = async () => resolveSettings(await readStoredSettings(db));
  let secret: { value: Promise<SecretHash | undefined>; until: number } | undefined;
  return {
    current,
    async present() {
      const [values, secret] = await Promise.all([current(), readSecretHash(db)]);
      return presentSettings(values, secret !== undefined);
    },
    async apply(patch) {
      const change = planSettingsChange(patch);
      await db.transaction(async (trx) => {
        await writeSettings(trx, change.values);
        if (change.secretKey !== undefined) await storeSecretHash(trx, hashSecret(change.secretKey));
      });
      if (change.secretKey !== undefined) secret = undefined;
      await onChange(await current());
    },
    registrationSecret() {
      if (!secret || secret.until <= Date.now()) {
        const value = readSecretHash(db);
        secret = { value, until: Date.now() + SECRET_CACHE_MS };
        // A failed read is not kept: the next registration asks Postgres again.
        value.catch(() => {
          if (secret?.value === value) secret = undefined;
        });
      }
      return secret.value;
    },
  };
}
