import { createSealer, isSealed, parseSecretsKey, type Sealer } from '../domain/sealed';
import type { Db } from './knex';

// The sealer of this process: set once at start from SECRETS_KEY (createServices does), used by the
// queries that store and read the secrets the service must read back.
let sealer: Sealer = createSealer(undefined);

export function useSecretsKey(text: string | undefined): void {
  sealer = createSealer(text === undefined ? undefined : parseSecretsKey(text));
}

export const seal = (plain: string, column: string) => sealer.seal(plain, column);
export const unseal = (stored: string, column: string) => sealer.open(stored, column);

/** The sealed columns: table, key column, sealed column (its name is bound into the seal). */
const SEALED = [
  ['signing_keys', 'kid', 'private_key'],
  ['webhooks', 'id', 'secret'],
] as const;

/** Seals what was stored before a key was set (a no-op without one); answers how many it sealed. */
export async function sealStoredSecrets(db: Db): Promise<number> {
  if (!sealer.sealing) return 0;
  let n = 0;
  for (const [table, id, column] of SEALED) {
    const rows = await db(table).select<Record<string, string>[]>(id, column);
    for (const row of rows.filter((r) => !isSealed(r[column]!))) {
      await db(table)
        .where({ [id]: row[id], [column]: row[column] })
        .update({ [column]: seal(row[column]!, `${table}.${column}`) });
      n++;
    }
  }
  return n;
}
