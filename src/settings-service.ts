import { hashSecret, type SecretHash } from './domain/credentials';
import {
  planSettingsChange,
  presentSettings,
  resolveSettings,
  type SettingValues,
  type SettingsPatch,
} from './domain/settings';
import { recordAudit, type AuditEntry } from './db/audit';
import type { Db } from './db/knex';
import type { Actor } from './domain/operators';
import { readSecretHash, readStoredSettings, storeSecretHash, writeSettings } from './db/settings';

export interface SettingsService {
  /** The current values, read from Postgres (the source of truth shared by every process). */
  current(): Promise<SettingValues>;
  /** The public shape of `/server-settings`. */
  present(): Promise<ReturnType<typeof presentSettings>>;
  /** Applies a validated merge patch in one transaction with its audit row, then tells the listeners. */
  apply(patch: SettingsPatch, actor: Actor): Promise<void>;
  /**
   * The stored registration secret (its salted hash), read at most once per SECRET_CACHE_MS: every
   * registration needs it. A change made through this process applies at once; one made elsewhere
   * within SECRET_CACHE_MS.
   */
  registrationSecret(): Promise<SecretHash | undefined>;
}

/** How long a replica may keep using the registration secret it read. */
export const SECRET_CACHE_MS = 1000;

/** The settings that changed, before and after; the registration secret only as changed, never its value. */
function settingsChanged(before: SettingValues, after: SettingValues, secretChanged: boolean): AuditEntry {
  const keys = (Object.keys(after) as (keyof SettingValues)[]).filter(
    (k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]),
  );
  const pick = (values: SettingValues) => Object.fromEntries(keys.map((k) => [k, values[k]]));
  const secret = secretChanged ? { 'device.secretKey': '(changed)' } : {};
  return { action: 'settings.changed', before: pick(before), after: { ...pick(after), ...secret } };
}

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
    async apply(patch, actor) {
      const change = planSettingsChange(patch);
      await db.transaction(async (trx) => {
        const before = resolveSettings(await readStoredSettings(trx));
        await writeSettings(trx, change.values);
        if (change.secretKey !== undefined) await storeSecretHash(trx, hashSecret(change.secretKey));
        const after = resolveSettings(await readStoredSettings(trx));
        await recordAudit(trx, actor, [settingsChanged(before, after, change.secretKey !== undefined)]);
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
