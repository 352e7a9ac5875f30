import { restingAt, roundsAllowed, type PolicyFields } from '../domain/policy';
import type { Queryable } from './knex';

export interface Maintenance {
  readonly until: Date;
  readonly reason: string;
  /** Should it go silent meanwhile, its recordings are stopped (no other effect runs). */
  readonly stopsRecordings: boolean;
  /** Set when the window is its group's rather than its own. */
  readonly group?: string;
}

/** A device group: its health-check policy and its maintenance window, if one is open. */
export interface DeviceGroup {
  readonly name: string;
  readonly policy: PolicyFields;
  readonly maintenance: Maintenance | null;
  readonly members: number;
}

interface GroupRow extends PolicyRow {
  name: string;
  maintenance_until: Date | null;
  maintenance_reason: string | null;
  maintenance_stops_recordings: boolean | null;
  members?: string;
}

/** A policy's columns, on a device or a group. */
export interface PolicyRow {
  max_misses: number | null;
  interval_multiple: number | null;
  link_max_p95_ms: number | null;
  link_max_miss_share: number | null;
}

export const POLICY_COLUMNS = ['max_misses', 'interval_multiple', 'link_max_p95_ms', 'link_max_miss_share'];

export const policyOfRow = (r: PolicyRow): PolicyFields => ({
  maxConsecutiveMisses: r.max_misses,
  intervalMultiple: r.interval_multiple,
  linkMaxP95Ms: r.link_max_p95_ms,
  linkMaxMissShare: r.link_max_miss_share,
});

/** A policy's columns from its fields (those left out are not written). */
export const policyColumns = (p: Partial<PolicyFields>) => ({
  max_misses: p.maxConsecutiveMisses,
  interval_multiple: p.intervalMultiple,
  link_max_p95_ms: p.linkMaxP95Ms,
  link_max_miss_share: p.linkMaxMissShare,
});

/** A maintenance window from its columns, if it is still open. */
export function openWindow(r: {
  maintenance_until: Date | null;
  maintenance_reason: string | null;
  maintenance_stops_recordings: boolean | null;
}): Maintenance | null {
  return r.maintenance_until !== null && r.maintenance_until.getTime() > Date.now()
    ? {
        until: r.maintenance_until,
        reason: r.maintenance_reason ?? '',
        stopsRecordings: r.maintenance_stops_recordings ?? true,
      }
    : null;
}

/** The columns a maintenance window is stored in (all null: no window). */
export const windowColumns = (m: Maintenance | null) => ({
  maintenance_until: m?.until ?? null,
  maintenance_reason: m?.reason ?? null,
  maintenance_stops_recordings: m?.stopsRecordings ?? null,
});

const toGroup = (r: GroupRow): DeviceGroup => ({
  name: r.name,
  policy: policyOfRow(r),
  maintenance: openWindow(r),
  members: Number(r.members ?? 0),
});

const GROUP_WITH_MEMBERS = `SELECT g.*, (SELECT count(*) FROM devices d
    WHERE d.group_name = g.name AND d.deleted_at IS NULL) AS members
  FROM device_groups g`;

export async function findGroup(q: Queryable, name: string): Promise<DeviceGroup | undefined> {
  const { rows } = await q.raw<{ rows: GroupRow[] }>(`${GROUP_WITH_MEMBERS} WHERE g.name = ?`, [name]);
  return rows[0] && toGroup(rows[0]);
}

export async function listGroups(q: Queryable): Promise<DeviceGroup[]> {
  const { rows } = await q.raw<{ rows: GroupRow[] }>(`${GROUP_WITH_MEMBERS} ORDER BY g.name`);
  return rows.map(toGroup);
}

/** Sets a group's policy, creating the group if need be. */
export async function putGroupPolicy(q: Queryable, name: string, policy: PolicyFields): Promise<void> {
  await q('device_groups')
    .insert({ name, ...policyColumns(policy) })
    .onConflict('name')
    .merge([...POLICY_COLUMNS, 'updated_at']);
}

/** Removes a group's policy and window; its devices keep the name and fall back to the server's. */
export async function deleteGroup(q: Queryable, name: string): Promise<boolean> {
  return (await q('device_groups').where({ name }).delete()) > 0;
}

/** Opens (or replaces, or with null closes) a group's maintenance window; false if no such group. */
export async function setGroupMaintenance(
  q: Queryable,
  name: string,
  m: Maintenance | null,
): Promise<boolean> {
  const n = await q('device_groups')
    .where({ name })
    .update({ ...windowColumns(m), updated_at: q.fn.now() });
  return n > 0;
}

/** The groups of these names that exist, by name (for presenting devices). */
export async function groupsNamed(q: Queryable, names: readonly string[]): Promise<Map<string, DeviceGroup>> {
  if (names.length === 0) return new Map();
  const rows = (await q('device_groups').whereIn('name', names as string[])) as GroupRow[];
  return new Map(rows.map((r) => [r.name, toGroup(r)]));
}

/**
 * The most valid rounds of silence any device is allowed, at the strictest: the server's allowance,
 * and that of every group and every device with a policy of its own. Evaluation reads only the
 * devices silent for longer than this, then judges each by its own policy.
 */
export async function strictestAllowance(q: Queryable, serverMaxMisses: number): Promise<number> {
  const m = serverMaxMisses;
  const { rows } = await q.raw<{ rows: { own: number | null; groups: number | null }[] }>(
    `SELECT
       (SELECT min((coalesce(d.max_misses, g.max_misses, ?) + 1)
                   * coalesce(d.interval_multiple, g.interval_multiple, 1) - 1)
          FROM devices d LEFT JOIN device_groups g ON g.name = d.group_name
         WHERE d.deleted_at IS NULL AND (d.max_misses IS NOT NULL OR d.interval_multiple IS NOT NULL)) AS own,
       (SELECT min((coalesce(max_misses, ?) + 1) * coalesce(interval_multiple, 1) - 1)
          FROM device_groups) AS groups`,
    [m, m],
  );
  const { own, groups } = rows[0]!;
  return Math.min(roundsAllowed(m, 1), own ?? Infinity, groups ?? Infinity);
}

/** Each of these devices' allowance of valid rounds of silence, by its effective policy. */
export async function allowancesOf(
  q: Queryable,
  ids: readonly string[],
  serverMaxMisses: number,
): Promise<Map<string, number>> {
  if (ids.length === 0) return new Map();
  const { rows } = await q.raw<{ rows: { id: string; misses: number; multiple: number }[] }>(
    `SELECT d.id, coalesce(d.max_misses, g.max_misses, ?) AS misses,
            coalesce(d.interval_multiple, g.interval_multiple, 1) AS multiple
       FROM devices d LEFT JOIN device_groups g ON g.name = d.group_name
      WHERE d.id = ANY(?::uuid[])`,
    [serverMaxMisses, [...ids]],
  );
  return new Map(rows.map((r) => [r.id, roundsAllowed(r.misses, r.multiple)]));
}

/** Every live device checked every k-th round with k > 1, and its k. */
export async function intervalMultiples(q: Queryable): Promise<Map<string, number>> {
  const { rows } = await q.raw<{ rows: { id: string; k: number }[] }>(
    `SELECT d.id, coalesce(d.interval_multiple, g.interval_multiple) AS k
       FROM devices d LEFT JOIN device_groups g ON g.name = d.group_name
      WHERE d.deleted_at IS NULL
        AND (d.interval_multiple > 1
             OR (d.interval_multiple IS NULL
                 AND d.group_name IN (SELECT name FROM device_groups WHERE interval_multiple > 1)))`,
  );
  return new Map(rows.map((r) => [r.id, r.k]));
}

/** The live devices not asked in round n (checked every k-th round, and n is not one of those). */
export async function restingIn(q: Queryable, round: number): Promise<string[]> {
  return restingAt(round, await intervalMultiples(q));
}
