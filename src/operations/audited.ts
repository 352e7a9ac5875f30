import type { Knex } from 'knex';
import { recordAudit, type AuditEntry } from '../db/audit';
import type { Db } from '../db/knex';
import type { Actor } from '../domain/operators';

/**
 * An operator's change and its audit row, in one transaction: both are kept or neither. A change that
 * finds nothing to change (answers `false`) is not recorded.
 */
export function audited<T>(
  db: Db,
  actor: Actor,
  change: (trx: Knex.Transaction) => Promise<T>,
  entry: AuditEntry | ((result: Exclude<T, false>) => AuditEntry),
): Promise<T> {
  return db.transaction(async (trx) => {
    const result = await change(trx);
    if (result !== false)
      await recordAudit(trx, actor, [
        typeof entry === 'function' ? entry(result as Exclude<T, false>) : entry,
      ]);
    return result;
  });
}
