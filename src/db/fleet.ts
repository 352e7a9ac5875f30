import type { DeviceStatus } from '../domain/device';
import type { Queryable } from './knex';

export interface FleetRow {
  readonly id: string;
  readonly name: string;
  readonly status: DeviceStatus;
  readonly connectedAt: Date | null;
  readonly lastHeartbeatAt: Date | null;
  readonly heardOnBus: 'own' | 'shared' | null;
  /** Its current token was heard in a text frame (Moth replays those to later joiners). */
  readonly tokenExposed: boolean;
  /** The end of its open maintenance window, if any. */
  readonly maintenanceUntil: Date | null;
  readonly flappingSince: Date | null;
  readonly recentSessions: { startedAt: Date; endedAt: Date | null; endReason: string | null }[];
}

export async function countDevicesByStatus(q: Queryable): Promise<Record<string, number>> {
  const rows: { status: string; n: string }[] = await q('devices')
    .whereNull('deleted_at')
    .select('status')
    .count('* as n')
    .groupBy('status');
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

/** The fleet page's rows: live devices by name, each with its three most recent sessions. */
export async function fleetOverview(
  q: Queryable,
  status: DeviceStatus | undefined,
  limit: number,
): Promise<FleetRow[]> {
  const query = q('devices')
    .whereNull('deleted_at')
    .orderBy('name')
    .limit(limit)
    .select(
      'id',
      'name',
      'status',
      'connected_at',
      'last_heartbeat_at',
      'heard_on_bus',
      'token_exposed_at',
      'maintenance_until',
      'flapping_since',
    );
  if (status) void query.where({ status });
  const devices = (await query) as {
    id: string;
    name: string;
    status: DeviceStatus;
    connected_at: Date | null;
    last_heartbeat_at: Date | null;
    heard_on_bus: 'own' | 'shared' | null;
    token_exposed_at: Date | null;
    maintenance_until: Date | null;
    flapping_since: Date | null;
  }[];
  if (devices.length === 0) return [];
  const { rows } = await q.raw<{
    rows: { device_id: string; started_at: Date; ended_at: Date | null; end_reason: string | null }[];
  }>(
    `SELECT device_id, started_at, ended_at, end_reason FROM (
       SELECT s.*, row_number() OVER (PARTITION BY device_id ORDER BY started_at DESC) AS rn
         FROM connection_sessions s WHERE device_id = ANY(?::uuid[])
     ) x WHERE rn <= 3 ORDER BY started_at DESC`,
    [devices.map((d) => d.id)],
  );
  return devices.map((d) => ({
    id: d.id,
    name: d.name,
    status: d.status,
    connectedAt: d.connected_at,
    lastHeartbeatAt: d.last_heartbeat_at,
    heardOnBus: d.heard_on_bus,
    tokenExposed: d.token_exposed_at !== null,
    maintenanceUntil:
      d.maintenance_until && d.maintenance_until.getTime() > Date.now() ? d.maintenance_until : null,
    flappingSince: d.flapping_since,
    recentSessions: rows
      .filter((r) => r.device_id === d.id)
      .map((r) => ({ startedAt: r.started_at, endedAt: r.ended_at, endReason: r.end_reason })),
  }));
}
