import { bucketStats, type LinkLimits, type LinkMark, type LinkState, type LinkStats } from '../domain/link';
import type { ServerPolicy } from '../domain/policy';
import type { Queryable } from './knex';

/** A robot's link as last measured. */
export interface LinkView extends LinkStats {
  readonly state: LinkState;
  readonly stateSince: Date;
  readonly measuredAt: Date;
}

interface LinkRow {
  device_id: string;
  p50_ms: number | null;
  p95_ms: number | null;
  max_ms: number | null;
  jitter_ms: number | null;
  miss_share: number;
  answered: number;
  missed: number;
  measured_at: Date;
  state: LinkState;
  state_since: Date;
  crossing_since: Date | null;
}

const toView = (r: LinkRow): LinkView => ({
  p50Ms: r.p50_ms,
  p95Ms: r.p95_ms,
  maxMs: r.max_ms,
  jitterMs: r.jitter_ms,
  missShare: r.miss_share,
  answered: r.answered,
  missed: r.missed,
  state: r.state,
  stateSince: r.state_since,
  measuredAt: r.measured_at,
});

/** The links of these devices, as last measured (a device never measured is absent). */
export async function linksOf(q: Queryable, deviceIds: readonly string[]): Promise<Map<string, LinkView>> {
  if (deviceIds.length === 0) return new Map();
  const rows = (await q('device_links').whereIn('device_id', deviceIds as string[])) as LinkRow[];
  return new Map(rows.map((r) => [r.device_id, toView(r)]));
}

/** A live device's link mark, locked for the transaction, with the limits its policy sets. */
export interface LockedLink {
  readonly deviceId: string;
  readonly mark: LinkMark;
  readonly limits: LinkLimits;
}

/**
 * Locks the link rows of these live devices (creating those never measured), in id order so two
 * writers cannot deadlock, with each device's limits: its own, else its group's, else the server's.
 */
export async function lockLinks(
  q: Queryable,
  deviceIds: readonly string[],
  server: Pick<ServerPolicy, 'linkMaxP95Ms' | 'linkMaxMissShare'>,
): Promise<LockedLink[]> {
  await q.raw(
    `INSERT INTO device_links (device_id)
     SELECT id FROM devices WHERE id = ANY(?::uuid[]) AND deleted_at IS NULL ORDER BY id
     ON CONFLICT (device_id) DO NOTHING`,
    [deviceIds as string[]],
  );
  const { rows } = await q.raw<{
    rows: (LinkRow & { max_p95: number; max_miss: number })[];
  }>(
    `SELECT l.*, coalesce(d.link_max_p95_ms, g.link_max_p95_ms, ?) AS max_p95,
            coalesce(d.link_max_miss_share, g.link_max_miss_share, ?) AS max_miss
       FROM device_links l JOIN devices d ON d.id = l.device_id AND d.deleted_at IS NULL
       LEFT JOIN device_groups g ON g.name = d.group_name
      WHERE l.device_id = ANY(?::uuid[])
      ORDER BY l.device_id FOR UPDATE OF l`,
    [server.linkMaxP95Ms, server.linkMaxMissShare, deviceIds as string[]],
  );
  return rows.map((r) => ({
    deviceId: r.device_id,
    mark: { state: r.state, stateSince: r.state_since, crossingSince: r.crossing_since },
    limits: { maxP95Ms: Number(r.max_p95), maxMissShare: Number(r.max_miss) },
  }));
}

/** Writes each device's latest figures and mark. */
export async function writeLinks(
  q: Queryable,
  links: readonly { deviceId: string; stats: LinkStats; mark: LinkMark }[],
  now: Date,
): Promise<void> {
  if (links.length === 0) return;
  // Columns with nulls in them: knex's types take arrays of one non-null type only.
  const col = <T>(f: (l: (typeof links)[number]) => T) => links.map(f) as unknown as string[];
  await q.raw(
    `UPDATE device_links l SET p50_ms = v.p50, p95_ms = v.p95, max_ms = v.max, jitter_ms = v.jitter,
            miss_share = v.miss_share, answered = v.answered, missed = v.missed, measured_at = ?,
            state = v.state, state_since = v.state_since, crossing_since = v.crossing_since
       FROM (SELECT unnest(?::uuid[]) AS id, unnest(?::real[]) AS p50, unnest(?::real[]) AS p95,
                    unnest(?::real[]) AS max, unnest(?::real[]) AS jitter, unnest(?::real[]) AS miss_share,
                    unnest(?::int[]) AS answered, unnest(?::int[]) AS missed, unnest(?::text[]) AS state,
                    unnest(?::timestamptz[]) AS state_since, unnest(?::timestamptz[]) AS crossing_since) v
      WHERE l.device_id = v.id`,
    [
      now,
      col((l) => l.deviceId),
      col((l) => l.stats.p50Ms),
      col((l) => l.stats.p95Ms),
      col((l) => l.stats.maxMs),
      col((l) => l.stats.jitterMs),
      col((l) => l.stats.missShare),
      col((l) => l.stats.answered),
      col((l) => l.stats.missed),
      col((l) => l.mark.state),
      col((l) => l.mark.stateSince),
      col((l) => l.mark.crossingSince),
    ],
  );
}

/** A chart bucket of one device: its answers in the span that starts at `startsAt`. */
export interface LinkBucket {
  readonly deviceId: string;
  readonly startsAt: Date;
  readonly stats: LinkStats;
}

/** Writes buckets of live devices (a bucket written again holds all its answers so far). */
export async function writeBuckets(q: Queryable, buckets: readonly LinkBucket[]): Promise<void> {
  if (buckets.length === 0) return;
  const col = <T>(f: (b: LinkBucket) => T) => buckets.map(f) as unknown as string[];
  await q.raw(
    `INSERT INTO link_buckets (device_id, starts_at, p50_ms, p95_ms, max_ms, answered, missed)
     SELECT v.* FROM (SELECT unnest(?::uuid[]) AS id, unnest(?::timestamptz[]) AS starts_at,
                             unnest(?::real[]) AS p50, unnest(?::real[]) AS p95, unnest(?::real[]) AS max,
                             unnest(?::int[]) AS answered, unnest(?::int[]) AS missed) v
       JOIN devices d ON d.id = v.id AND d.deleted_at IS NULL
     ON CONFLICT (device_id, starts_at) DO UPDATE SET p50_ms = EXCLUDED.p50_ms, p95_ms = EXCLUDED.p95_ms,
       max_ms = EXCLUDED.max_ms, answered = EXCLUDED.answered, missed = EXCLUDED.missed`,
    [
      col((b) => b.deviceId),
      col((b) => b.startsAt),
      col((b) => b.stats.p50Ms),
      col((b) => b.stats.p95Ms),
      col((b) => b.stats.maxMs),
      col((b) => b.stats.answered),
      col((b) => b.stats.missed),
    ],
  );
}

/** A device's buckets since `since`, oldest first. */
export async function bucketsOf(
  q: Queryable,
  deviceId: string,
  since: Date,
): Promise<Omit<LinkBucket, 'deviceId'>[]> {
  const rows = (await q('link_buckets')
    .where({ device_id: deviceId })
    .where('starts_at', '>=', since)
    .orderBy('starts_at')) as {
    starts_at: Date;
    p50_ms: number | null;
    p95_ms: number | null;
    max_ms: number | null;
    answered: number;
    missed: number;
  }[];
  return rows.map((r) => ({
    startsAt: r.starts_at,
    stats: bucketStats({
      answered: r.answered,
      missed: r.missed,
      maxMs: r.max_ms,
      p50Ms: r.p50_ms,
      p95Ms: r.p95_ms,
    }),
  }));
}

/** Deletes buckets that started before `before`; answers how many. */
export async function pruneBuckets(q: Queryable, before: Date): Promise<number> {
  return q('link_buckets').where('starts_at', '<', before).delete();
}

/** Connected robots whose link is degraded. */
export async function countDegradedLinks(q: Queryable): Promise<number> {
  const { rows } = await q.raw<{ rows: { n: string }[] }>(
    `SELECT count(*) AS n FROM device_links l JOIN devices d ON d.id = l.device_id
      WHERE l.state = 'degraded' AND d.status = 'CONNECTED' AND d.deleted_at IS NULL`,
  );
  return Number(rows[0]!.n);
}
