import type { SessionSpan } from '../domain/uptime';
import type { Queryable } from './knex';

export interface DeviceHistory {
  readonly deviceId: string;
  readonly createdAt: number;
  readonly deletedAt: number | null;
  readonly sessions: SessionSpan[];
}

/**
 * What uptime over [from, to) needs of each device (one, a group's, or every device that existed then): the
 * sessions overlapping the range and the last one that ended before it (the outage it began may
 * reach into the range).
 */
export async function historiesFor(
  q: Queryable,
  from: Date,
  to: Date,
  scope: { deviceId?: string; group?: string } = {},
): Promise<DeviceHistory[]> {
  const { deviceId, group } = scope;
  const devices = q('devices')
    .select('id', 'created_at', 'deleted_at')
    .where('created_at', '<', to)
    .andWhere((w) => void w.whereNull('deleted_at').orWhere('deleted_at', '>', from));
  if (deviceId) void devices.where({ id: deviceId });
  if (group !== undefined) void devices.where({ group_name: group });
  const rows = await devices.select<{ id: string; created_at: Date; deleted_at: Date | null }[]>();
  if (rows.length === 0) return [];
  const only = deviceId
    ? 'AND device_id = ?'
    : group !== undefined
      ? 'AND device_id IN (SELECT id FROM devices WHERE group_name = ?)'
      : '';
  const which = deviceId ?? group;
  const args = which !== undefined ? [to, from, which, from, which] : [to, from, from];
  const { rows: sessions } = await q.raw<{
    rows: { device_id: string; started_at: Date; ended_at: Date | null; end_reason: string | null }[];
  }>(
    `SELECT device_id, started_at, ended_at, end_reason FROM connection_sessions
      WHERE started_at < ? AND (ended_at IS NULL OR ended_at >= ?) ${only}
     UNION ALL
     (SELECT DISTINCT ON (device_id) device_id, started_at, ended_at, end_reason FROM connection_sessions
       WHERE ended_at < ? ${only} ORDER BY device_id, ended_at DESC)`,
    args,
  );
  const byDevice = new Map<string, SessionSpan[]>();
  for (const s of sessions) {
    const list = byDevice.get(s.device_id) ?? [];
    list.push({
      startedAt: +s.started_at,
      endedAt: s.ended_at ? +s.ended_at : null,
      endReason: s.end_reason,
    });
    byDevice.set(s.device_id, list);
  }
  return rows.map((d) => ({
    deviceId: d.id,
    createdAt: +d.created_at,
    deletedAt: d.deleted_at ? +d.deleted_at : null,
    sessions: byDevice.get(d.id) ?? [],
  }));
}
