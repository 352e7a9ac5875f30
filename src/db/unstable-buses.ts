import { clientEvent } from '../domain/events';
import type { Db } from './knex';
import { appendEvents } from './outbox';

/**
 * These devices' buses keep being lost (src/domain/bus-losses.ts): each not yet marked is marked
 * unstable, with one DEVICE_BUS_UNSTABLE; every one records the loss as its latest. Answers the newly
 * marked.
 */
export async function markBusesUnstable(
  db: Db,
  deviceIds: readonly string[],
  fields: { losses: number; windowSeconds: number },
): Promise<string[]> {
  if (deviceIds.length === 0) return [];
  return db.transaction(async (trx) => {
    const { rows } = await trx.raw<{ rows: { id: string; newly: boolean }[] }>(
      `UPDATE devices SET bus_lost_at = now(), bus_unstable_since = coalesce(bus_unstable_since, now())
        WHERE id = ANY(?::uuid[]) AND deleted_at IS NULL
        RETURNING id, bus_unstable_since = now() AS newly`,
      [deviceIds as string[]],
    );
    const newly = rows.filter((r) => r.newly).map((r) => r.id);
    await appendEvents(
      trx,
      newly.map((id) => clientEvent('DEVICE_BUS_UNSTABLE', id, fields)),
    );
    return newly;
  });
}

/** Ends the marks of buses not lost within the window (one DEVICE_BUS_STABLE each); answers how many. */
export async function endStableBuses(db: Db, windowSeconds: number): Promise<number> {
  // Most rounds there is none: a look at the index, no transaction.
  if (!(await db('devices').whereNotNull('bus_unstable_since').first('id'))) return 0;
  return db.transaction(async (trx) => {
    const { rows } = await trx.raw<{ rows: { id: string }[] }>(
      `UPDATE devices SET bus_unstable_since = NULL
        WHERE bus_unstable_since IS NOT NULL AND bus_lost_at < now() - make_interval(secs => ?)
        RETURNING id`,
      [windowSeconds],
    );
    await appendEvents(
      trx,
      rows.map((r) => clientEvent('DEVICE_BUS_STABLE', r.id, { stableForSeconds: windowSeconds })),
    );
    return rows.length;
  });
}
