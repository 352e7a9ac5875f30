import { randomUUID } from 'node:crypto';
import {
  CONNECT_EFFECTS,
  DISCONNECT_EFFECTS,
  type DisconnectReason,
  type EffectKind,
  type SessionEffects,
} from '../domain/effects';
import { clientEvent } from '../domain/events';
import type { FlapPolicy } from '../domain/flapping';
import { appendEvents, insertEventsFrom } from './outbox';
import type { Db, Queryable } from './knex';

/** A device heard (a first or recovered heartbeat) in a round. */
export interface Heard {
  readonly deviceId: string;
  readonly round: number;
}

export interface ConnectOptions {
  readonly automaticRecording: boolean;
  readonly flap: FlapPolicy;
  readonly heardAt?: Date;
}

/**
 * DISCONNECTED -> CONNECTED for one device: `connectDevices` with one. Null when it was not
 * disconnected (already connected, deleted, unknown).
 */
export async function connectDevice(
  db: Db,
  deviceId: string,
  round: number,
  options: ConnectOptions,
): Promise<SessionEffects | null> {
  return (await connectDevices(db, [{ deviceId, round }], options))[0] ?? null;
}

/**
 * DISCONNECTED -> CONNECTED for many devices in one statement (atomic, one round trip: a fleet that
 * arrives at once is connected at the pace of Postgres, not of round trips), each a compare-and-set
 * (rows locked in id order, as the disconnects lock them, and NO KEY UPDATE: see MARK_DISCONNECTED),
 * with their session rows, DEVICE_CONNECTED events and effect rows. A device that failed
 * (MISSED_HEARTBEATS) more than the flap threshold within the window starts flapping (DEVICE_FLAPPING,
 * once per episode), and a flapping device's effects wait the hold time (should the session end
 * first, the effect finds it over and starts nothing). Devices that were not disconnected (already
 * connected, deleted, unknown) are left out: racing callers (two gateways, a gateway and the
 * evaluation) produce exactly one transition.
 */
export async function connectDevices(
  q: Queryable,
  heard: readonly Heard[],
  options: ConnectOptions,
): Promise<SessionEffects[]> {
  const unique = [...new Map(heard.map((h) => [h.deviceId, h])).values()];
  if (unique.length === 0) return [];
  const at = options.heardAt ?? new Date();
  const { flap } = options;
  const held = new Date(at.getTime() + flap.holdSeconds * 1000);
  const effects = options.automaticRecording ? [...CONNECT_EFFECTS] : [];
  // Every candidate's events are made here; only those of devices connected are written.
  const candidates = unique.map((h) => {
    const sessionId = randomUUID();
    return {
      id: h.deviceId,
      round: h.round,
      session_id: sessionId,
      connected: clientEvent('DEVICE_CONNECTED', h.deviceId, { sessionId, round: h.round }, at),
      flapping: clientEvent(
        'DEVICE_FLAPPING',
        h.deviceId,
        { windowSeconds: flap.windowSeconds, holdSeconds: flap.holdSeconds },
        at,
      ),
    };
  });
  const { rows } = await q.raw<{ rows: { id: string; session_id: string; flapping: boolean }[] }>(
    CONNECT_DEVICES,
    [JSON.stringify(candidates), at, flap.windowSeconds, at, at, flap.threshold, at, at, held, effects],
  );
  return rows.map((r) => ({
    deviceId: r.id,
    sessionId: r.session_id,
    effects,
    ...(r.flapping && { notBefore: held.getTime() }),
  }));
}

const CONNECT_DEVICES = `WITH v AS (
       SELECT * FROM jsonb_to_recordset(?::jsonb)
                  AS v(id uuid, round bigint, session_id uuid, connected jsonb, flapping jsonb)
        ORDER BY id
     ), target AS (
       SELECT v.*, d.flapping_since,
              (SELECT count(*) FROM connection_sessions s
                WHERE s.device_id = d.id AND s.end_reason = 'MISSED_HEARTBEATS'
                  AND s.ended_at > ?::timestamptz - make_interval(secs => ?)) AS failures
         FROM v CROSS JOIN LATERAL (
           SELECT d.id, d.flapping_since FROM devices d
            WHERE d.id = v.id AND d.status = 'DISCONNECTED' AND d.deleted_at IS NULL
              FOR NO KEY UPDATE
         ) d
     ), connected AS (
       UPDATE devices d
          SET status = 'CONNECTED', status_version = d.status_version + 1,
              current_session_id = t.session_id, connected_round = t.round,
              connected_at = ?, last_heartbeat_at = ?, updated_at = now(),
              flapping_since = CASE WHEN t.flapping_since IS NULL AND t.failures > ? THEN ?::timestamptz ELSE d.flapping_since END
         FROM target t
        WHERE d.id = t.id
       RETURNING d.id, t.session_id, t.round, t.connected, t.failures,
                 t.flapping_since IS NULL AND d.flapping_since IS NOT NULL AS starts_flapping,
                 d.flapping_since IS NOT NULL AS flapping, t.flapping AS flapping_event
     ), sessions AS (
       INSERT INTO connection_sessions (id, device_id, started_at, started_round, last_round_heard)
       SELECT session_id, id, ?, round, round FROM connected
     ), events AS (${insertEventsFrom(
       `(SELECT connected FROM connected
          UNION ALL
         SELECT jsonb_set(flapping_event, '{event,failures}', to_jsonb(failures))
           FROM connected WHERE starts_flapping) AS c(e)`,
     )}), effects AS (
       INSERT INTO effects (session_id, device_id, kind, not_before)
       SELECT c.session_id, c.id, k.kind, CASE WHEN c.flapping THEN ?::timestamptz END
         FROM connected c CROSS JOIN unnest(?::text[]) AS k(kind)
       ON CONFLICT (session_id, kind) DO NOTHING
     )
     SELECT id, session_id, flapping FROM connected`;

export interface DisconnectCandidate {
  readonly deviceId: string;
  /** Only a session that began before this round is ended: a newer session has been heard since. */
  readonly beforeRound: number | null;
  readonly missedRounds: number;
  readonly lastRoundHeard: number | null;
  readonly lastHeartbeatAt: Date | null;
}

/**
 * CONNECTED -> DISCONNECTED for many devices in one transaction, each a compare-and-set: the device
 * must still be connected in a session that began before `beforeRound`. Ends the sessions, writes one
 * DEVICE_DISCONNECTED per device and the disconnect effect rows.
 */
export async function disconnectDevices(
  q: Queryable,
  candidates: readonly DisconnectCandidate[],
  reason: DisconnectReason,
  /** What runs after: every disconnect effect, unless a maintenance window says otherwise. */
  effectKinds: readonly EffectKind[] = DISCONNECT_EFFECTS,
): Promise<SessionEffects[]> {
  if (candidates.length === 0) return [];
  const run = async (trx: Queryable) => {
    const rows = await markDisconnected(trx, candidates);
    if (rows.length === 0) return [];
    await endSessions(trx, rows, reason);
    const effects = [...effectKinds];
    await insertEffects(
      trx,
      rows.flatMap((r) => effects.map((kind) => ({ sessionId: r.session_id, deviceId: r.id, kind }))),
    );
    await appendEvents(
      trx,
      rows.map((r) =>
        clientEvent('DEVICE_DISCONNECTED', r.id, { reason, missedRounds: r.missed, sessionId: r.session_id }),
      ),
    );
    return rows.map((r) => ({ deviceId: r.id, sessionId: r.session_id, effects }));
  };
  return 'isTransaction' in q && q.isTransaction ? run(q) : (q as Db).transaction(run);
}

interface Disconnected {
  id: string;
  session_id: string;
  missed: number;
  last_round: string | null;
  last_seen: Date | null;
}

// One primary-key probe per candidate, in id order (the lock order), whatever the planner believes of
// the table: a lateral subquery with a row lock cannot be flattened into a join, which, on statistics
// that say few devices are CONNECTED, once re-parsed the input per row. The lock is NO KEY UPDATE, as
// Postgres's own UPDATE of these columns takes: FOR UPDATE also waited for every transaction holding
// a foreign key to the device, such as a gateway's link report (its ~10,000 link rows and chart
// buckets, ~1 s in a storm), while NO KEY UPDATE still excludes every other transition of the device.
const MARK_DISCONNECTED = `
  WITH v AS (
    SELECT * FROM jsonb_to_recordset(?::jsonb)
      AS v(id uuid, before_round bigint, missed int, last_round bigint, last_seen timestamptz)
     ORDER BY id
  ), target AS (
    SELECT d.id, d.current_session_id, v.missed, v.last_round, v.last_seen
      FROM v CROSS JOIN LATERAL (
        SELECT d.id, d.current_session_id FROM devices d
         WHERE d.id = v.id AND d.status = 'CONNECTED' AND d.deleted_at IS NULL
           AND (v.before_round IS NULL OR d.connected_round < v.before_round)
           FOR NO KEY UPDATE
      ) d
  )
  UPDATE devices d
     SET status = 'DISCONNECTED', status_version = d.status_version + 1, current_session_id = NULL,
         disconnected_at = now(), updated_at = now(),
         last_heartbeat_at = GREATEST(d.last_heartbeat_at, target.last_seen)
    FROM target
   WHERE d.id = target.id
  RETURNING d.id, target.current_session_id AS session_id, target.missed, target.last_round,
            target.last_seen`;

async function markDisconnected(trx: Queryable, candidates: readonly DisconnectCandidate[]) {
  const input = candidates.map((c) => ({
    id: c.deviceId,
    before_round: c.beforeRound,
    missed: c.missedRounds,
    last_round: c.lastRoundHeard,
    last_seen: c.lastHeartbeatAt?.toISOString() ?? null,
  }));
  const { rows } = await trx.raw<{ rows: Disconnected[] }>(MARK_DISCONNECTED, [JSON.stringify(input)]);
  return rows;
}

async function endSessions(trx: Queryable, rows: readonly Disconnected[], reason: DisconnectReason) {
  const sessions = rows.map((r) => ({
    id: r.session_id,
    missed: r.missed,
    last_round: r.last_round,
    last_seen: r.last_seen,
  }));
  await trx.raw(
    `UPDATE connection_sessions s
        SET ended_at = now(), end_reason = ?, rounds_missed = v.missed,
            last_round_heard = COALESCE(v.last_round, s.last_round_heard), last_heartbeat_at = v.last_seen
       FROM jsonb_to_recordset(?::jsonb) AS v(id uuid, missed int, last_round bigint, last_seen timestamptz)
      WHERE s.id = v.id`,
    [reason, JSON.stringify(sessions)],
  );
}

async function insertEffects(
  q: Queryable,
  effects: readonly { sessionId: string; deviceId: string; kind: EffectKind; notBefore?: number }[],
) {
  if (effects.length === 0) return;
  await q.raw(
    `INSERT INTO effects (session_id, device_id, kind, not_before)
     SELECT e.session_id, e.device_id, e.kind, to_timestamp(e.not_before / 1000.0)
       FROM jsonb_to_recordset(?::jsonb) AS e(session_id uuid, device_id uuid, kind text, not_before float8)
     ON CONFLICT (session_id, kind) DO NOTHING`,
    [
      JSON.stringify(
        effects.map((e) => ({
          session_id: e.sessionId,
          device_id: e.deviceId,
          kind: e.kind,
          not_before: e.notBefore ?? null,
        })),
      ),
    ],
  );
}

/**
 * Ends the episodes of flapping devices that have not failed within the window (one
 * DEVICE_FLAPPING_ENDED each); answers how many ended.
 */
export async function endStableFlapping(db: Db, windowSeconds: number): Promise<number> {
  // Most rounds there is none: a look at the index, no transaction.
  if (!(await db('devices').whereNotNull('flapping_since').first('id'))) return 0;
  return db.transaction(async (trx) => {
    const { rows } = await trx.raw<{ rows: { id: string }[] }>(
      `UPDATE devices d SET flapping_since = NULL
        WHERE d.flapping_since IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM connection_sessions s
                           WHERE s.device_id = d.id AND s.end_reason = 'MISSED_HEARTBEATS'
                             AND s.ended_at > now() - make_interval(secs => ?))
        RETURNING d.id`,
      [windowSeconds],
    );
    await appendEvents(
      trx,
      rows.map((r) => clientEvent('DEVICE_FLAPPING_ENDED', r.id, { stableForSeconds: windowSeconds })),
    );
    return rows.length;
  });
}
