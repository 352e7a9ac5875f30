import type { Actor } from '../domain/operators';
import type { Queryable } from './knex';

/** One change by an operator, as the audit log keeps it. */
export interface AuditEntry {
  /** What was done: `settings.changed`, `device.deleted`, `device.token_rotated`, ... */
  readonly action: string;
  /** What it was done to: a device id, a group name, a webhook id, a key id (none for the settings). */
  readonly target?: string | null;
  readonly before?: unknown;
  readonly after?: unknown;
}

export interface AuditRow {
  readonly id: number;
  readonly at: string;
  readonly actor: string;
  readonly address: string;
  readonly action: string;
  readonly target: string | null;
  readonly before: unknown;
  readonly after: unknown;
}

/** Records changes in the caller's transaction: they are kept with their change, or not at all. */
export async function recordAudit(q: Queryable, actor: Actor, entries: readonly AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await q('audit_log').insert(
    entries.map((e) => ({
      actor: actor.label,
      address: actor.address,
      action: e.action,
      target: e.target ?? null,
      before: e.before === undefined ? null : JSON.stringify(e.before),
      after: e.after === undefined ? null : JSON.stringify(e.after),
    })),
  );
}

/** The log in the order it was written, after an id; of one target when given. */
export async function readAudit(
  q: Queryable,
  page: { after: number; limit: number; target?: string | undefined },
): Promise<AuditRow[]> {
  const rows = await q('audit_log')
    .where('id', '>', page.after)
    .modify((b) => (page.target === undefined ? b : b.where({ target: page.target })))
    .orderBy('id')
    .limit(page.limit)
    .select<
      {
        id: string;
        at: Date;
        actor: string;
        address: string;
        action: string;
        target: string | null;
        before: unknown;
        after: unknown;
      }[]
    >('*');
  return rows.map((r) => ({ ...r, id: Number(r.id), at: r.at.toISOString() }));
}
