import { randomUUID } from 'node:crypto';
import type { Track } from '../../src/domain/device';
import type { Db } from '../../src/db/knex';

/**
 * Device rows written straight into Postgres, for tests of one part below the API: `n` devices
 * (DISCONNECTED unless said), with these Tracks and actions.
 */
export async function insertDevices(
  db: Db,
  n: number,
  options: { status?: 'CONNECTED' | 'DISCONNECTED'; tracks?: Track[]; actions?: string[] } = {},
): Promise<string[]> {
  const ids = Array.from({ length: n }, () => randomUUID());
  const connected = options.status === 'CONNECTED';
  for (let i = 0; i < n; i += 1000) {
    await db('devices').insert(
      ids.slice(i, i + 1000).map((id) => ({
        id,
        name: `d-${id}`,
        token_hash: `h-${id}`,
        public_channel: id,
        tracks: JSON.stringify(options.tracks ?? []),
        actions: JSON.stringify(options.actions ?? []),
        status: options.status ?? 'DISCONNECTED',
        ...(connected && { connected_round: 1 }),
      })),
    );
  }
  return ids;
}

/** CONNECTED devices, each in a session that began in round 1. */
export async function connectedDevices(
  db: Db,
  n: number,
  options: { tracks?: Track[]; actions?: string[] } = {},
) {
  const ids = await insertDevices(db, n, { ...options, status: 'CONNECTED' });
  await db.raw(
    `WITH s AS (INSERT INTO connection_sessions (id, device_id, started_round)
                SELECT gen_random_uuid(), id, 1 FROM devices WHERE id = ANY(?::uuid[]) RETURNING id, device_id)
     UPDATE devices d SET current_session_id = s.id FROM s WHERE d.id = s.device_id`,
    [ids],
  );
  return ids;
}
