import type { DeviceStatus, Track } from '../domain/device';
import type { OutgoingEvent } from '../domain/events';
import type { PolicyFields } from '../domain/policy';
import type { Queryable } from './knex';
import { linksOf, type LinkView } from './links';
import { INSERT_EVENTS } from './outbox';
import {
  groupsNamed,
  openWindow,
  POLICY_COLUMNS,
  policyColumns,
  policyOfRow,
  windowColumns,
  type Maintenance,
} from './policies';

export type { Maintenance } from './policies';

export interface Device {
  readonly id: string;
  readonly seq: number;
  readonly name: string;
  readonly publicChannel: string;
  /** Names the device's own device-management bus (its Moth track). */
  readonly busId: string;
  /** Where the device was last heard: its own bus, the shared bus of earlier versions, or never. */
  readonly heardOnBus: 'own' | 'shared' | null;
  /** When it first answered with a v2 proof (from then on, proofs only); null while it sends its token. */
  readonly proofsSince: Date | null;
  /** When its current token was first heard in a text frame (Moth replays those); null if never. */
  readonly tokenExposedAt: Date | null;
  /** Its maintenance window, or its group's, while one is open (its own first). */
  readonly maintenance: Maintenance | null;
  readonly group: string | null;
  /** Since when it has been flapping (losing and regaining its link), while it is. */
  readonly flappingSince: Date | null;
  /** Since when the gateway has kept losing its bus (see src/domain/bus-losses.ts), while it does. */
  readonly busUnstableSince: Date | null;
  /** Its link as the gateway last measured it (null: never). */
  readonly link: LinkView | null;
  /** The health-check policy it sets itself (null fields: its group's or the server's). */
  readonly policy: PolicyFields;
  /** Its group's policy, when the group has one. */
  readonly groupPolicy: PolicyFields | null;
  readonly tracks: Track[];
  readonly actions: string[];
  readonly status: DeviceStatus;
  readonly statusVersion: number;
  readonly currentSessionId: string | null;
  readonly createdAt: Date;
  readonly connectedAt: Date | null;
  readonly disconnectedAt: Date | null;
  readonly lastHeartbeatAt: Date | null;
}

interface DeviceRow {
  id: string;
  seq: string;
  name: string;
  public_channel: string;
  bus_id: string;
  heard_on_bus: 'own' | 'shared' | null;
  proofs_since: Date | null;
  token_exposed_at: Date | null;
  maintenance_until: Date | null;
  maintenance_reason: string | null;
  maintenance_stops_recordings: boolean | null;
  group_name: string | null;
  flapping_since: Date | null;
  bus_unstable_since: Date | null;
  link_max_p95_ms: number | null;
  link_max_miss_share: number | null;
  max_misses: number | null;
  interval_multiple: number | null;
  tracks: Track[];
  actions: string[];
  status: DeviceStatus;
  status_version: number;
  current_session_id: string | null;
  created_at: Date;
  connected_at: Date | null;
  disconnected_at: Date | null;
  last_heartbeat_at: Date | null;
}

const COLUMNS = [
  'id',
  'seq',
  'name',
  'public_channel',
  'bus_id',
  'heard_on_bus',
  'proofs_since',
  'token_exposed_at',
  'maintenance_until',
  'maintenance_reason',
  'maintenance_stops_recordings',
  'group_name',
  'flapping_since',
  'bus_unstable_since',
  ...POLICY_COLUMNS,
  'tracks',
  'actions',
  'status',
  'status_version',
  'current_session_id',
  'created_at',
  'connected_at',
  'disconnected_at',
  'last_heartbeat_at',
];

function toDevice(r: DeviceRow): Device {
  return {
    id: r.id,
    seq: Number(r.seq),
    name: r.name,
    publicChannel: r.public_channel,
    busId: r.bus_id,
    heardOnBus: r.heard_on_bus,
    proofsSince: r.proofs_since,
    tokenExposedAt: r.token_exposed_at,
    maintenance: openWindow(r),
    group: r.group_name,
    flappingSince: r.flapping_since,
    busUnstableSince: r.bus_unstable_since,
    policy: policyOfRow(r),
    link: null,
    groupPolicy: null,
    tracks: r.tracks,
    actions: r.actions,
    status: r.status,
    statusVersion: r.status_version,
    currentSessionId: r.current_session_id,
    createdAt: r.created_at,
    connectedAt: r.connected_at,
    disconnectedAt: r.disconnected_at,
    lastHeartbeatAt: r.last_heartbeat_at,
  };
}

/**
 * Adds what devices take from their groups (the group's policy, and its window when they have none)
 * and their links as last measured.
 */
async function withGroups(q: Queryable, rows: readonly DeviceRow[]): Promise<Device[]> {
  const groups = await groupsNamed(q, [
    ...new Set(rows.map((r) => r.group_name).filter((g): g is string => g !== null)),
  ]);
  const links = await linksOf(
    q,
    rows.map((r) => r.id),
  );
  return rows.map((r) => {
    const d = { ...toDevice(r), link: links.get(r.id) ?? null };
    const g = d.group === null ? undefined : groups.get(d.group);
    if (!g) return d;
    const window = g.maintenance && { ...g.maintenance, group: g.name };
    return { ...d, groupPolicy: g.policy, maintenance: d.maintenance ?? window };
  });
}

export interface NewDevice {
  readonly id: string;
  readonly name: string;
  readonly tokenHash: string;
  readonly busId: string;
  readonly tracks: readonly Track[];
  readonly actions: readonly string[];
  readonly group: string | null;
}

const INSERT_DEVICE_WITH_EVENT = `WITH d AS (
       INSERT INTO devices (id, name, token_hash, public_channel, bus_id, tracks, actions, group_name)
       VALUES (?, ?, ?, ?, ?, ?::jsonb, ?::jsonb, ?)
       RETURNING ${COLUMNS.join(', ')}
     ), e AS (${INSERT_EVENTS})
     SELECT * FROM d`;

/**
 * Inserts a device and its DEVICE_REGISTERED event in one statement (atomic, one round trip). Its
 * public Moth channel name is its id, never anything derived from the token. A named (prepared)
 * statement: Postgres plans it once per connection, which halves its cost per registration.
 */
export async function insertDeviceWithEvent(
  q: Queryable,
  d: NewDevice,
  event: OutgoingEvent,
): Promise<Device> {
  const { rows } = await q
    .raw<{ rows: DeviceRow[] }>(INSERT_DEVICE_WITH_EVENT, [
      d.id,
      d.name,
      d.tokenHash,
      d.id,
      d.busId,
      JSON.stringify(d.tracks),
      JSON.stringify(d.actions),
      d.group,
      JSON.stringify([event]),
    ])
    .options({ name: 'insert-device-with-event-v4' });
  return (await withGroups(q, rows))[0]!;
}

/** A live device; `share` locks its row until the transaction ends (no delete can pass it meanwhile). */
export async function findLiveDevice(
  q: Queryable,
  id: string,
  options: { share?: boolean } = {},
): Promise<Device | undefined> {
  const query = q('devices').select(COLUMNS).where({ id }).whereNull('deleted_at').first();
  if (options.share) void query.forShare();
  const row = (await query) as DeviceRow | undefined;
  return row && (await withGroups(q, [row]))[0];
}

/** The live device holding this token hash, if any. */
export async function findDeviceIdByTokenHash(q: Queryable, tokenHash: string): Promise<string | undefined> {
  const row = await q('devices')
    .select<{ id: string }[]>('id')
    .where({ token_hash: tokenHash })
    .whereNull('deleted_at')
    .first();
  return row?.id;
}

/** The live devices holding these token hashes (the gateway's cache misses). */
export async function findDeviceIdsByTokenHashes(
  q: Queryable,
  hashes: readonly string[],
): Promise<{ tokenHash: string; deviceId: string; proofsOnly: boolean }[]> {
  const rows = (await q('devices')
    .select('id', 'token_hash', 'proofs_since')
    .whereIn('token_hash', hashes as string[])
    .whereNull('deleted_at')) as { id: string; token_hash: string; proofs_since: Date | null }[];
  return rows.map((r) => ({ tokenHash: r.token_hash, deviceId: r.id, proofsOnly: r.proofs_since !== null }));
}

/** The current token hashes of live devices (the keys their v2 proofs are checked under). */
export async function findTokenHashesOfDevices(
  q: Queryable,
  deviceIds: readonly string[],
): Promise<{ deviceId: string; tokenHash: string }[]> {
  const rows = (await q('devices')
    .select('id', 'token_hash')
    .whereIn('id', deviceIds as string[])
    .whereNull('deleted_at')) as { id: string; token_hash: string }[];
  return rows.map((r) => ({ deviceId: r.id, tokenHash: r.token_hash }));
}

/** How many devices are registered (not deleted). */
export async function countLiveDevices(q: Queryable): Promise<number> {
  const [row] = await q('devices').whereNull('deleted_at').count<{ n: string }[]>({ n: '*' });
  return Number(row?.n ?? 0);
}

/**
 * Sets `assignment` on those of these devices where `unmarked` holds (both SQL on the row `d`; the
 * ids are the first binding), locking their rows in id order and NO KEY UPDATE, as connects and
 * disconnects lock them (src/db/transitions.ts). Updated by a plain `id IN (...)`, the rows of a large
 * mark were locked in the table's order, and a mark of a fleet's first heartbeats deadlocked with its
 * connects: Postgres ended one of them after its 1 s `deadlock_timeout`, the other having waited.
 */
const MARK_IN_ID_ORDER = (unmarked: string, assignment: string) => `
  WITH target AS (
    SELECT d.id
      FROM (SELECT unnest(?::uuid[]) AS id ORDER BY 1) v
      CROSS JOIN LATERAL (SELECT d.id FROM devices d WHERE d.id = v.id AND ${unmarked} FOR NO KEY UPDATE) d
  )
  UPDATE devices d SET ${assignment} FROM target WHERE d.id = target.id`;

/** Records that these devices' current tokens were heard in a text frame (kept until the token changes). */
export async function markTokenExposed(q: Queryable, deviceIds: readonly string[]): Promise<void> {
  if (deviceIds.length === 0) return;
  await q.raw(MARK_IN_ID_ORDER('d.token_exposed_at IS NULL', 'token_exposed_at = now()'), [
    deviceIds as string[],
  ]);
}

/** Marks devices as having answered with a proof: plain-token heartbeats of theirs are refused from now on. */
export async function markProofsOnly(q: Queryable, deviceIds: readonly string[]): Promise<void> {
  if (deviceIds.length === 0) return;
  await q.raw(MARK_IN_ID_ORDER('d.proofs_since IS NULL', 'proofs_since = now()'), [deviceIds as string[]]);
}

export interface DevicePageQuery {
  readonly status?: DeviceStatus;
  readonly group?: string;
  readonly flapping?: boolean;
  /** Only devices whose link's p95 latency is above this (ms), or is degraded. */
  readonly linkWorseThan?: number | 'degraded';
  readonly afterSeq?: number;
  readonly limit: number;
}

/** One page of live devices in creation order; fetches one extra row to tell whether more follow. */
export async function listDevices(
  q: Queryable,
  p: DevicePageQuery,
): Promise<{ devices: Device[]; more: boolean }> {
  const query = q('devices')
    .select(COLUMNS)
    .whereNull('deleted_at')
    .orderBy('seq')
    .limit(p.limit + 1);
  if (p.status) void query.where({ status: p.status });
  if (p.group !== undefined) void query.where({ group_name: p.group });
  if (p.flapping !== undefined)
    void (p.flapping ? query.whereNotNull('flapping_since') : query.whereNull('flapping_since'));
  if (p.afterSeq !== undefined) void query.where('seq', '>', p.afterSeq);
  if (p.linkWorseThan !== undefined) {
    const worse = q('device_links').select('device_id');
    void (p.linkWorseThan === 'degraded'
      ? worse.where({ state: 'degraded' })
      : worse.where('p95_ms', '>', p.linkWorseThan));
    void query.whereIn('id', worse);
  }
  const rows = (await query) as DeviceRow[];
  return { devices: await withGroups(q, rows.slice(0, p.limit)), more: rows.length > p.limit };
}

/** Replaces the token hash of a live device; returns its id, or undefined when there is no such device. */
export async function replaceTokenHash(
  q: Queryable,
  id: string,
  tokenHash: string,
): Promise<string | undefined> {
  const [row] = await q('devices')
    .update({ token_hash: tokenHash, token_exposed_at: null, updated_at: q.fn.now() })
    .where({ id })
    .whereNull('deleted_at')
    .returning<{ id: string }[]>('id');
  return row?.id;
}

/** Soft-deletes a device: its history stays, its name is freed, its token stops matching anything. */
export async function markDeviceDeleted(q: Queryable, id: string): Promise<boolean> {
  const n = await q('devices')
    .update({ deleted_at: q.fn.now(), updated_at: q.fn.now(), token_hash: q.raw(`'deleted:' || id`) })
    .where({ id })
    .whereNull('deleted_at');
  return n > 0;
}

/** Which live devices a bulk token rotation takes: all, or those matching every given criterion. */
export interface RotationFilter {
  readonly ids?: readonly string[];
  readonly status?: DeviceStatus;
  /** Last heard on the shared bus of earlier versions (their tokens went over it). */
  readonly usesSharedBus?: boolean;
}

/**
 * Gives each selected live device a new token hash, in one statement, and answers which devices it
 * changed with their old hashes. Rows are locked in id order, so two rotations cannot deadlock.
 */
export async function replaceTokenHashes(
  q: Queryable,
  filter: RotationFilter,
  newHash: (deviceId: string) => string,
): Promise<{ id: string; name: string; oldHash: string }[]> {
  let select = q('devices')
    .select('id', 'name', 'token_hash')
    .whereNull('deleted_at')
    .orderBy('id')
    .forUpdate();
  if (filter.ids) select = select.whereIn('id', filter.ids as string[]);
  if (filter.status) select = select.where({ status: filter.status });
  if (filter.usesSharedBus !== undefined)
    select = filter.usesSharedBus
      ? select.where({ heard_on_bus: 'shared' })
      : select.whereRaw("heard_on_bus IS DISTINCT FROM 'shared'");
  const rows = (await select) as { id: string; name: string; token_hash: string }[];
  if (rows.length === 0) return [];
  await q.raw(
    `UPDATE devices d SET token_hash = v.hash, token_exposed_at = NULL, updated_at = now()
     FROM (SELECT unnest(?::uuid[]) AS id, unnest(?::text[]) AS hash) v WHERE d.id = v.id`,
    [rows.map((r) => r.id), rows.map((r) => newHash(r.id))],
  );
  return rows.map((r) => ({ id: r.id, name: r.name, oldHash: r.token_hash }));
}

/** Locks a live device row for the rest of the transaction. */
export async function lockLiveDevice(q: Queryable, id: string): Promise<Device | undefined> {
  const row = (await q('devices')
    .select(COLUMNS)
    .where({ id })
    .whereNull('deleted_at')
    .forUpdate()
    .first()) as DeviceRow | undefined;
  return row && toDevice(row);
}

/** A live device's bus, as the gateways hold it. */
export interface DeviceBus {
  readonly deviceId: string;
  readonly busId: string;
  readonly heardOnBus: 'own' | 'shared' | null;
}

/** Every live device's bus, in pages of creation order (the gateways keep the ones of their shards). */
export async function listDeviceBuses(q: Queryable, afterSeq: number, limit: number) {
  const rows = (await q('devices')
    .select('id', 'seq', 'bus_id', 'heard_on_bus')
    .whereNull('deleted_at')
    .where('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(limit)) as { id: string; seq: string; bus_id: string; heard_on_bus: DeviceBus['heardOnBus'] }[];
  return rows.map((r) => ({
    seq: Number(r.seq),
    deviceId: r.id,
    busId: r.bus_id,
    heardOnBus: r.heard_on_bus,
  }));
}

/** Records on which bus these devices were last heard (written only when it changed). */
export async function markHeardOnBus(
  q: Queryable,
  deviceIds: readonly string[],
  bus: 'own' | 'shared',
): Promise<void> {
  if (deviceIds.length === 0) return;
  await q.raw(MARK_IN_ID_ORDER('d.heard_on_bus IS DISTINCT FROM ?', 'heard_on_bus = ?'), [
    deviceIds as string[],
    bus,
    bus,
  ]);
}

/** Opens (or replaces) a live device's maintenance window; false when there is no such device. */
export async function setMaintenance(q: Queryable, id: string, m: Maintenance | null): Promise<boolean> {
  const n = await q('devices')
    .where({ id })
    .whereNull('deleted_at')
    .update({ ...windowColumns(m), updated_at: q.fn.now() });
  return n > 0;
}

/** Which of these devices are in maintenance now (own window or group's), and whether their recordings are to be stopped. */
export async function inMaintenance(q: Queryable, ids: readonly string[]): Promise<Map<string, boolean>> {
  if (ids.length === 0) return new Map();
  const { rows } = await q.raw<{ rows: { id: string; stops: boolean | null }[] }>(
    `SELECT d.id, CASE WHEN d.maintenance_until > now() THEN d.maintenance_stops_recordings
                       ELSE g.maintenance_stops_recordings END AS stops
       FROM devices d LEFT JOIN device_groups g ON g.name = d.group_name
      WHERE d.id = ANY(?::uuid[]) AND (d.maintenance_until > now() OR g.maintenance_until > now())`,
    [[...ids]],
  );
  return new Map(rows.map((r) => [r.id, r.stops ?? true]));
}

/** Every device in maintenance now, on its own or by its group (few: an operator opens each window). */
export async function devicesInMaintenance(q: Queryable): Promise<string[]> {
  const { rows } = await q.raw<{ rows: { id: string }[] }>(
    `SELECT id FROM devices WHERE deleted_at IS NULL AND maintenance_until > now()
     UNION
     SELECT d.id FROM devices d JOIN device_groups g ON g.name = d.group_name
      WHERE d.deleted_at IS NULL AND g.maintenance_until > now()`,
  );
  return rows.map((r) => r.id);
}

/** Sets a live device's group and its own policy fields (those given); false if there is no such device. */
export async function updateDevicePolicy(
  q: Queryable,
  id: string,
  change: { group?: string | null; policy: Partial<PolicyFields> },
): Promise<boolean> {
  const n = await q('devices')
    .where({ id })
    .whereNull('deleted_at')
    .update({
      ...(change.group !== undefined && { group_name: change.group }),
      ...Object.fromEntries(Object.entries(policyColumns(change.policy)).filter(([, v]) => v !== undefined)),
      updated_at: q.fn.now(),
    });
  return n > 0;
}

/** The device's name, deleted or not ('' for an unknown id): the robots' events carry it. */
export async function deviceName(q: Queryable, id: string): Promise<string> {
  return (await q('devices').where({ id }).first<{ name: string } | undefined>('name'))?.name ?? '';
}

/** The live device's token hash (locked for the transaction when asked), if it exists. */
export async function tokenHashOf(
  q: Queryable,
  id: string,
  options: { lock?: boolean } = {},
): Promise<string | undefined> {
  const query = q('devices').where({ id }).whereNull('deleted_at');
  if (options.lock) void query.forUpdate();
  return (await query.first<{ token_hash: string } | undefined>('token_hash'))?.token_hash;
}

/** The latest round any device was connected in (0 if none). */
export async function latestConnectedRound(q: Queryable): Promise<number> {
  const row = await q('devices').max<{ max: string | null }[]>('connected_round as max').first();
  return Number(row?.max ?? 0);
}

/** One page of live CONNECTED devices in creation order, after `afterSeq`. */
export async function connectedDevicesAfter(
  q: Queryable,
  afterSeq: number,
  limit: number,
): Promise<{ id: string; seq: number }[]> {
  const rows = await q('devices')
    .where({ status: 'CONNECTED' })
    .whereNull('deleted_at')
    .where('seq', '>', afterSeq)
    .orderBy('seq')
    .limit(limit)
    .select<{ id: string; seq: string }[]>('id', 'seq');
  return rows.map((r) => ({ id: r.id, seq: Number(r.seq) }));
}

/** Whether a device with this id ever existed (a deleted one keeps its history). */
export async function deviceExisted(q: Queryable, id: string): Promise<boolean> {
  return (await q('devices').where({ id }).first('id')) !== undefined;
}
