import { randomUUID } from 'node:crypto';
import {
  CONNECT_EFFECTS,
  DISCONNECT_EFFECTS,
  type DisconnectReason,
  type EffectKind,
  type SessionEffects,
} from '../domain/effects';
import { clientEvent } from '../domain/events';
import { appendEvents } from './outbox';
import type { Db, Queryable } from './knex';

/** When a device counts as flapping, and how long its connect effects then wait. */
export interface FlapPolicy {
  /** More failures (MISSED_HEARTBEATS disconnects) than this within the window... */
  readonly threshold: number;
  readonly windowSeconds: number;
  /** ...and its connect effects wait for it to stay connected this long. */
  readonly holdSeconds: number;
}

/** The flap policy from the settings. */
export const flapPolicy = (s: {
  'device.flapThreshold': number;
  'device.flapWindowSeconds': number;
  'device.flapHoldSeconds': number;
}): FlapPolicy => ({
  threshold: s['device.flapThreshold'],
  windowSeconds: s['device.flapWindowSeconds'],
  holdSeconds: s['device.flapHoldSeconds'],
});

/**
 * Marks the device flapping when it failed more than the threshold within the window (with a
 * DEVICE_FLAPPING event, once per episode); answers whether it is flapping now.
 */
async function noteFlapping(q: Queryable, deviceId: string, flap: FlapPolicy, at: Date): Promise<boolean> {
  const { rows } = await q.raw<{ rows: { failures: string; since: Date | null }[] }>(
    `SELECT (SELECT count(*) FROM connection_sessions
              WHERE device_id = ? AND end_reason = 'MISSED_HEARTBEATS'
                AND ended_at > ?::timestamptz - make_interval(secs => ?)) AS failures,
            (SELECT flapping_since FROM devices WHERE id = ?) AS since`,
    [deviceId, at, flap.windowSeconds, deviceId],
  );
  const failures = Number(rows[0]!.failures);
  if (rows[0]!.since !== null) return true;
  if (failures <= flap.threshold) return false;
  await q('devices').where({ id: deviceId }).update({ flapping_since: at });
  await appendEvents(q, [
    clientEvent(
      'DEVICE_FLAPPING',
      deviceId,
      { failures, windowSeconds: flap.windowSeconds, holdSeconds: flap.holdSeconds },
      at,
    ),
  ]);
  return true;
}

/**
 * DISCONNECTED -> CONNECTED as one compare-and-set, with its session row, its DEVICE_CONNECTED event
 * and its effect rows in the same transaction. Returns null when the device was not disconnected
 * (already connected, deleted, unknown): racing callers produce exactly one transition.
 */
export async function connectDevice(
  db: Db,
  deviceId: string,
  round: number,
  options: { automaticRecording: boolean; flap: FlapPolicy; heardAt?: Date },
): Promise<SessionEffects | null> {
  return db.transaction(async (trx) => {
    const sessionId = randomUUID();
    const heardAt = options.heardAt ?? new Date();
    const [row] = await trx('devices')
      .update({
        status: 'CONNECTED',
        status_version: trx.raw('status_version + 1'),
        current_session_id: sessionId,
        connected_round: round,
        connected_at: heardAt,
        last_heartbeat_at: heardAt,
        updated_at: trx.fn.now(),
      })
      .where({ id: deviceId, status: 'DISCONNECTED' })
      .whereNull('deleted_at')
      .returning<{ id: string }[]>('id');
    if (!row) return null;
    await trx('connection_sessions').insert({
      id: sessionId,
      device_id: deviceId,
      started_at: heardAt,
      started_round: round,
      last_round_heard: round,
    });
    const effects = options.automaticRecording ? [...CONNECT_EFFECTS] : [];
    await appendEvents(trx, [clientEvent('DEVICE_CONNECTED', deviceId, { sessionId, round }, heardAt)]);
    // A flapping device's recording waits for it to stay connected the hold time (should the session
    // end first, the effect finds it over and starts nothing).
    const flapping = await noteFlapping(trx, deviceId, options.flap, heardAt);
    const notBefore = flapping ? heardAt.getTime() + options.flap.holdSeconds * 1000 : undefined;
    await insertEffects(
      trx,
      effects.map((kind) => ({ sessionId, deviceId, kind, notBefore })),
    );
    return { deviceId, sessionId, effects, ...(notBefore !== undefined && { notBefore }) };
  });
}

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
    const input = JSON.stringify(
      candidates.map((c) => ({
        id: c.deviceId,
        before_round: c.beforeRound,
        missed: c.missedRounds,
        last_round: c.lastRoundHeard,
        last_seen: c.lastHeartbeatAt?.toISOString() ?? null,
      })),
    );
    const { rows } = await trx.raw<{
      rows: {
        id: string;
        session_id: string;
        missed: number;
        last_round: string | null;
        last_seen: Date | null;
      }[];
    }>(
      // One primary-key probe per candidate, in id order (the lock order), whatever the planner
      // believes of the table: a lateral subquery with FOR UPDATE cannot be flattened into a join,
      // which, on statistics that say few devices are CONNECTED, once re-parsed the input per row.
      `WITH v AS (
         SELECT * FROM jsonb_to_recordset(?::jsonb)
           AS v(id uuid, before_round bigint, missed int, last_round bigint, last_seen timestamptz)
          ORDER BY id
       ), target AS (
         SELECT d.id, d.current_session_id, v.missed, v.last_round, v.last_seen
           FROM v CROSS JOIN LATERAL (
             SELECT d.id, d.current_session_id FROM devices d
              WHERE d.id = v.id AND d.status = 'CONNECTED' AND d.deleted_at IS NULL
                AND (v.before_round IS NULL OR d.connected_round < v.before_round)
                FOR UPDATE
           ) d
       )
       UPDATE devices d
          SET status = 'DISCONNECTED', status_version = d.status_version + 1, current_session_id = NULL,
              disconnected_at = now(), updated_at = now(),
              last_heartbeat_at = GREATEST(d.last_heartbeat_at, target.last_seen)
         FROM target
        WHERE d.id = target.id
       RETURNING d.id, target.current_session_id AS session_id, target.missed, target.last_round,
                 target.last_seen`,
      [input],
    );
    if (rows.length === 0) return [];
    await trx.raw(
      `UPDATE connection_sessions s
          SET ended_at = now(), end_reason = ?, rounds_missed = v.missed,
              last_round_heard = COALESCE(v.last_round, s.last_round_heard), last_heartbeat_at = v.last_seen
         FROM jsonb_to_recordset(?::jsonb) AS v(id uuid, missed int, last_round bigint, last_seen timestamptz)
        WHERE s.id = v.id`,
      [
        reason,
        JSON.stringify(
          rows.map((r) => ({
            id: r.session_id,
            missed: r.missed,
            last_round: r.last_round,
            last_seen: r.last_seen,
          })),
        ),
      ],
    );
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
