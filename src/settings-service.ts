import { hashSecret } from './domain/credentials';
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
}

export function createSettingsService(
  db: Db,
  onChange: (values: SettingValues) => Promise<void>,
): SettingsService {
  const current = async () => resolveSettings(await readStoredSettings(db));
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
      await onChange(await current());
    },
  };
}
