import type { DeviceStatus } from '../domain/device';
import type { Queryable } from './knex';
import type { Knex } from 'knex';

export interface FleetSession {
  readonly startedAt: Date;
  readonly endedAt: Date | null;
  readonly endReason: string | null;
}

export interface FleetRow {
  readonly id: string;
  readonly name: string;
  readonly status: DeviceStatus;
  readonly group: string | null;
  readonly createdAt: Date;
  readonly connectedAt: Date | null;
  readonly lastHeartbeatAt: Date | null;
  readonly heardOnBus: 'own' | 'shared' | null;
  /** Its current token was heard in a text frame (Moth replays those to later joiners). */
  readonly tokenExposed: boolean;
  /** The end of its open maintenance window (its own or its group's), if any. */
  readonly maintenanceUntil: Date | null;
  readonly flappingSince: Date | null;
  /** Since when the gateway has kept losing its bus, while it does. */
  readonly busUnstableSince: Date | null;
  /** Its link's p95 latency (ms, null: never measured) and state. */
  readonly linkP95Ms: number | null;
  readonly linkState: 'ok' | 'degraded' | null;
  /** Its sessions that overlap the last `sinceMs` (the page's 24 h), oldest first. */
  readonly sessions: FleetSession[];
}

/**
 * Where a fleet page starts: after a name (by name), or after a link's p95 latency and a name (by link,
 * the slowest first; -1 stands for a link never measured, last).
 */
export type FleetCursor = { readonly name: string; readonly p95Ms?: number };

/** What the fleet page filters on; every given criterion must match. */
export interface FleetFilter {
  readonly status?: DeviceStatus;
  readonly group?: string;
  readonly flapping?: boolean;
  readonly maintenance?: boolean;
  /** A part of the name, any case. */
  readonly search?: string;
}

export async function countDevicesByStatus(q: Queryable): Promise<Record<string, number>> {
  const rows: { status: string; n: string }[] = await q('devices')
    .whereNull('deleted_at')
    .select('status')
    .count('* as n')
    .groupBy('status');
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

/** The fleet's counts for the page's header, and the groups its devices are in. */
export async function fleetSummary(q: Queryable) {
  const { rows } = await q.raw<{
    rows: { connected: string; disconnected: string; flapping: string; maintenance: string }[];
  }>(
    `SELECT count(*) FILTER (WHERE d.status = 'CONNECTED') AS connected,
            count(*) FILTER (WHERE d.status = 'DISCONNECTED') AS disconnected,
            count(*) FILTER (WHERE d.flapping_since IS NOT NULL) AS flapping,
            count(*) FILTER (WHERE d.maintenance_until > now() OR g.maintenance_until > now()) AS maintenance
       FROM devices d LEFT JOIN device_groups g ON g.name = d.group_name
      WHERE d.deleted_at IS NULL`,
  );
  const groups = await q('devices')
    .whereNull('deleted_at')
    .whereNotNull('group_name')
    .distinct('group_name')
    .orderBy('group_name')
    .pluck('group_name');
  const c = rows[0]!;
  return {
    counts: {
      CONNECTED: Number(c.connected),
      DISCONNECTED: Number(c.disconnected),
      flapping: Number(c.flapping),
      maintenance: Number(c.maintenance),
    },
    groups: groups as string[],
  };
}

const likePattern = (s: string) => `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

type FleetQuery = Knex.QueryBuilder;

function filterFleet(query: FleetQuery, filter: FleetFilter): void {
  if (filter.status) void query.where('d.status', filter.status);
  if (filter.group !== undefined) void query.where('d.group_name', filter.group);
  if (filter.flapping !== undefined)
    void (filter.flapping ? query.whereNotNull('d.flapping_since') : query.whereNull('d.flapping_since'));
  if (filter.maintenance !== undefined)
    void query.whereRaw(
      `${filter.maintenance ? '' : 'NOT '}coalesce(d.maintenance_until > now() OR g.maintenance_until > now(), false)`,
    );
  if (filter.search) void query.whereRaw(`d.name ILIKE ? ESCAPE '\\'`, [likePattern(filter.search)]);
}

/** By name, or the slowest links first (a link never measured counts as -1: last); then the keyset. */
function orderFleet(query: FleetQuery, sort: 'name' | 'link', after: FleetCursor | undefined): void {
  const p95 = 'coalesce(l.p95_ms, -1)';
  if (sort === 'link') void query.orderByRaw(`${p95} DESC, d.name`);
  else void query.orderBy('d.name');
  if (after && sort === 'link')
    void query.whereRaw(`(${p95} < ?::real OR (${p95} = ?::real AND d.name > ?))`, [
      after.p95Ms ?? -1,
      after.p95Ms ?? -1,
      after.name,
    ]);
  else if (after) void query.where('d.name', '>', after.name);
}

interface FleetDbRow {
  id: string;
  name: string;
  status: DeviceStatus;
  group_name: string | null;
  created_at: Date;
  connected_at: Date | null;
  last_heartbeat_at: Date | null;
  heard_on_bus: 'own' | 'shared' | null;
  token_exposed_at: Date | null;
  flapping_since: Date | null;
  bus_unstable_since: Date | null;
  maintenance_until: Date | null;
  p95_ms: number | null;
  link_state: 'ok' | 'degraded' | null;
}

const fleetRow = (d: FleetDbRow, sessions: FleetSession[]): FleetRow => ({
  id: d.id,
  name: d.name,
  status: d.status,
  group: d.group_name,
  createdAt: d.created_at,
  connectedAt: d.connected_at,
  lastHeartbeatAt: d.last_heartbeat_at,
  heardOnBus: d.heard_on_bus,
  tokenExposed: d.token_exposed_at !== null,
  maintenanceUntil: d.maintenance_until,
  flappingSince: d.flapping_since,
  busUnstableSince: d.bus_unstable_since,
  linkP95Ms: d.p95_ms,
  linkState: d.link_state,
  sessions,
});

/**
 * One page of the fleet in name order, or by link (the slowest p95 first), after `after` (keyset
 * paging: as fast on the last page of 10,000 as on the first), each device with its sessions of the
 * last `sinceMs`. Fetches one row more to tell whether another page follows.
 */
export async function fleetPage(
  q: Queryable,
  filter: FleetFilter,
  page: { sort: 'name' | 'link'; after?: FleetCursor; limit: number; sinceMs: number },
): Promise<{ devices: FleetRow[]; more: boolean }> {
  const query = q('devices as d')
    .leftJoin('device_groups as g', 'g.name', 'd.group_name')
    .leftJoin('device_links as l', 'l.device_id', 'd.id')
    .whereNull('d.deleted_at')
    .limit(page.limit + 1)
    .select(
      'd.id',
      'd.name',
      'd.status',
      'd.group_name',
      'd.created_at',
      'd.connected_at',
      'd.last_heartbeat_at',
      'd.heard_on_bus',
      'd.token_exposed_at',
      'd.flapping_since',
      'd.bus_unstable_since',
      'l.p95_ms',
      'l.state as link_state',
      q.raw(
        `CASE WHEN d.maintenance_until > now() THEN d.maintenance_until
              WHEN g.maintenance_until > now() THEN g.maintenance_until END AS maintenance_until`,
      ),
    );
  filterFleet(query, filter);
  orderFleet(query, page.sort, page.after);
  const rows = (await query) as FleetDbRow[];
  const devices = rows.slice(0, page.limit);
  const sessions = await sessionsSince(
    q,
    devices.map((d) => d.id),
    new Date(Date.now() - page.sinceMs),
  );
  return {
    more: rows.length > page.limit,
    devices: devices.map((d) => fleetRow(d, sessions.get(d.id) ?? [])),
  };
}

/** The sessions of these devices that overlap [since, now), by device, oldest first. */
async function sessionsSince(q: Queryable, ids: readonly string[], since: Date) {
  const out = new Map<string, FleetSession[]>();
  if (ids.length === 0) return out;
  const rows = await q('connection_sessions')
    .whereIn('device_id', ids as string[])
    .andWhere((w) => void w.whereNull('ended_at').orWhere('ended_at', '>', since))
    .orderBy('started_at')
    .select<{ device_id: string; started_at: Date; ended_at: Date | null; end_reason: string | null }[]>(
      'device_id',
      'started_at',
      'ended_at',
      'end_reason',
    );
  for (const r of rows) {
    const list = out.get(r.device_id) ?? [];
    list.push({ startedAt: r.started_at, endedAt: r.ended_at, endReason: r.end_reason });
    out.set(r.device_id, list);
  }
  return out;
}

/**
 * How many devices were connected at each of `points` evenly spaced times of [from, to], from the
 * session history: the sessions overlapping the range are read once and swept in time order.
 */
export async function connectedOverTime(
  q: Queryable,
  from: Date,
  to: Date,
  points: number,
): Promise<{ at: number[]; connected: (number | null)[] }> {
  const known = await firstKnown(q);
  const { rows } = await q.raw<{ rows: { started_at: Date; ended_at: Date | null }[] }>(
    `SELECT started_at, ended_at FROM connection_sessions
      WHERE started_at < ? AND (ended_at IS NULL OR ended_at > ?)`,
    [to, from],
  );
  const step = (to.getTime() - from.getTime()) / (points - 1);
  const at = Array.from({ length: points }, (_, i) => Math.round(from.getTime() + i * step));
  const starts = rows.map((r) => r.started_at.getTime()).sort((a, b) => a - b);
  const ends = rows
    .filter((r) => r.ended_at !== null)
    .map((r) => r.ended_at!.getTime())
    .sort((a, b) => a - b);
  const connected: (number | null)[] = [];
  let s = 0;
  let e = 0;
  for (const t of at) {
    while (s < starts.length && starts[s]! <= t) s++;
    while (e < ends.length && ends[e]! <= t) e++;
    // Before anything was known (the service's first start, its first device), there is no data.
    connected.push(t < known ? null : s - e);
  }
  return { at, connected };
}

/** When the history begins (epoch ms): the service's first migration, or an older device (imported). */
async function firstKnown(q: Queryable): Promise<number> {
  const { rows } = await q.raw<{ rows: { first: Date | null }[] }>(
    `SELECT least((SELECT min(migration_time) FROM knex_migrations),
                  (SELECT min(created_at) FROM devices)) AS first`,
  );
  return rows[0]?.first?.getTime() ?? Date.now();
}

/**
 * Detection delays (end of a MISSED_HEARTBEATS session minus its last heartbeat) since a time, in
 * the buckets of the `rollcall_detection_seconds` metric: the same figure, from every worker, kept.
 */
export async function detectionDelays(
  q: Queryable,
  since: Date,
  buckets: readonly number[],
): Promise<{ le: number | null; count: number }[]> {
  const rows = await q('connection_sessions')
    .where({ end_reason: 'MISSED_HEARTBEATS' })
    .where('ended_at', '>', since)
    .whereNotNull('last_heartbeat_at')
    .select<{ s: number }[]>(q.raw('extract(epoch FROM ended_at - last_heartbeat_at)::float8 AS s'));
  const counts: { le: number | null; count: number }[] = [
    ...buckets.map((le) => ({ le, count: 0 })),
    { le: null, count: 0 },
  ];
  for (const { s } of rows) {
    const i = buckets.findIndex((le) => s <= le);
    counts[i === -1 ? buckets.length : i]!.count++;
  }
  return counts;
}
