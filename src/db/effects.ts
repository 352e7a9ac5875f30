import type { EffectKind, EffectStatus } from '../domain/effects';
import type { Queryable } from './knex';

export interface EffectRow {
  readonly sessionId: string;
  readonly deviceId: string;
  readonly kind: EffectKind;
  readonly status: EffectStatus;
  readonly attempts: number;
  readonly lastError: string | null;
  readonly createdAt: Date;
  readonly doneAt: Date | null;
  /** Not to run before this time (epoch ms), if set. */
  readonly notBefore?: number;
}

interface Row {
  session_id: string;
  device_id: string;
  kind: EffectKind;
  status: EffectStatus;
  attempts: number;
  last_error: string | null;
  created_at: Date;
  done_at: Date | null;
  not_before: Date | null;
}

const toEffect = (r: Row): EffectRow => ({
  sessionId: r.session_id,
  deviceId: r.device_id,
  kind: r.kind,
  status: r.status,
  attempts: r.attempts,
  lastError: r.last_error,
  createdAt: r.created_at,
  doneAt: r.done_at,
  ...(r.not_before !== null && { notBefore: r.not_before.getTime() }),
});

export async function findEffect(
  q: Queryable,
  sessionId: string,
  kind: EffectKind,
): Promise<EffectRow | undefined> {
  const row = await q('effects').where({ session_id: sessionId, kind }).first<Row | undefined>();
  return row && toEffect(row);
}

export async function recordAttempt(q: Queryable, sessionId: string, kind: EffectKind): Promise<void> {
  await q('effects')
    .where({ session_id: sessionId, kind })
    .update({ attempts: q.raw('attempts + 1'), updated_at: q.fn.now() });
}

/**
 * Ends a PENDING effect DONE, its attempt counted, in one statement: concurrent runs of one effect
 * serialize on the row, and the second finds it ended (undefined). Answers when it ended and since
 * when it was owed: its session's end for a disconnect's effects, its creation otherwise.
 */
export async function completeEffect(
  q: Queryable,
  sessionId: string,
  kind: EffectKind,
): Promise<{ doneAt: Date; owedSince: Date } | undefined> {
  const { rows } = await q.raw<{ rows: { done_at: Date; owed_since: Date }[] }>(
    `UPDATE effects e
        SET status = 'DONE', attempts = e.attempts + 1, updated_at = now(), done_at = now()
      WHERE e.session_id = ? AND e.kind = ? AND e.status = 'PENDING'
     RETURNING e.done_at,
               coalesce((SELECT s.ended_at FROM connection_sessions s WHERE s.id = e.session_id), e.created_at)
                 AS owed_since`,
    [sessionId, kind],
  );
  return rows[0] && { doneAt: rows[0].done_at, owedSince: rows[0].owed_since };
}

/** Ends a PENDING effect FAILED with its error; returns false when it had already ended. */
export async function failEffect(
  q: Queryable,
  sessionId: string,
  kind: EffectKind,
  error: string,
): Promise<boolean> {
  const n = await q('effects')
    .where({ session_id: sessionId, kind, status: 'PENDING' })
    .update({ status: 'FAILED', updated_at: q.fn.now(), last_error: error.slice(0, 1000) });
  return n > 0;
}

export async function noteEffectError(
  q: Queryable,
  sessionId: string,
  kind: EffectKind,
  error: string,
): Promise<void> {
  await q('effects')
    .where({ session_id: sessionId, kind })
    .update({ last_error: error.slice(0, 1000), updated_at: q.fn.now() });
}

/** PENDING effects written more than `olderThanMs` ago (and due): candidates for the sweeper. */
export async function selectStalePending(
  q: Queryable,
  olderThanMs: number,
  limit: number,
): Promise<EffectRow[]> {
  const rows = await q('effects')
    .where({ status: 'PENDING' })
    .where('created_at', '<', q.raw(`now() - make_interval(secs => ?)`, [olderThanMs / 1000]))
    .andWhere((w) => void w.whereNull('not_before').orWhere('not_before', '<', q.fn.now()))
    .orderBy('created_at')
    .limit(limit)
    .select<Row[]>('*');
  return rows.map(toEffect);
}

export async function effectsOfSessions(q: Queryable, sessionIds: readonly string[]): Promise<EffectRow[]> {
  if (sessionIds.length === 0) return [];
  const rows = await q('effects').whereIn('session_id', sessionIds).orderBy('kind').select<Row[]>('*');
  return rows.map(toEffect);
}

export async function sessionEnd(
  q: Queryable,
  sessionId: string,
): Promise<{ endedAt: Date | null } | undefined> {
  const row = await q('connection_sessions')
    .where({ id: sessionId })
    .first<{ ended_at: Date | null } | undefined>('ended_at');
  return row && { endedAt: row.ended_at };
}
