import type { SecretHash } from '../domain/credentials';
import type { SettingKey } from '../domain/settings';
import type { Queryable } from './knex';

export async function readStoredSettings(q: Queryable): Promise<Map<string, unknown>> {
  const rows = await q('server_settings').select<{ key: string; value: unknown }[]>('key', 'value');
  return new Map(rows.map((r) => [r.key, r.value]));
}

/** Stores each key, or deletes its row (back to the default) where the value is null. */
export async function writeSettings(
  q: Queryable,
  values: Partial<Record<SettingKey, unknown>>,
): Promise<void> {
  for (const [key, value] of Object.entries(values)) {
    if (value === null) await q('server_settings').where({ key }).delete();
    else
      await q('server_settings')
        .insert({ key, value: JSON.stringify(value), updated_at: q.fn.now() })
        .onConflict('key')
        .merge();
  }
}

export async function readSecretHash(q: Queryable): Promise<SecretHash | undefined> {
  return q('registration_secret').select<SecretHash[]>('salt', 'hash').where({ id: 1 }).first();
}

export async function storeSecretHash(q: Queryable, s: SecretHash): Promise<void> {
  await q('registration_secret')
    .insert({ id: 1, salt: s.salt, hash: s.hash, updated_at: q.fn.now() })
    .onConflict('id')
    .merge();
}

/** Stores the secret only when none is stored yet (first start). Returns true when it stored it. */
export async function storeSecretHashIfAbsent(q: Queryable, s: SecretHash): Promise<boolean> {
  const rows = await q('registration_secret')
    .insert({ id: 1, salt: s.salt, hash: s.hash })
    .onConflict('id')
    .ignore()
    .returning('id');
  return rows.length > 0;
}
