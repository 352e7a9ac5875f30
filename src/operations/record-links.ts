import { clientEvent } from '../domain/events';
import { judgeLink, type LinkStats } from '../domain/link';
import { serverPolicy, type SettingValues } from '../domain/settings';
import type { Db } from '../db/knex';
import { lockLinks, pruneBuckets, writeBuckets, writeLinks, type LinkBucket } from '../db/links';
import { appendEvents } from '../db/outbox';

/** Chart buckets are kept this long. */
export const LINK_BUCKETS_KEPT_MS = 24 * 3600_000;

/** What a gateway measured of one robot's link (src/gateway/link-meter.ts). */
export interface MeasuredLink {
  readonly deviceId: string;
  readonly window: LinkStats;
  readonly buckets: readonly Omit<LinkBucket, 'deviceId'>[];
}

/**
 * Records robots' link figures in one transaction: each robot's window and mark, its chart buckets,
 * and DEVICE_LINK_DEGRADED / DEVICE_LINK_RECOVERED for each link that changed state (its mark judged
 * against its own, its group's or the server's limits: src/domain/link.ts). No effect runs for either.
 * Answers how many links degraded and recovered.
 */
export function createRecordLinks(deps: { db: Db; settings: () => Promise<SettingValues> }) {
  return async (measured: readonly MeasuredLink[], now = new Date()) => {
    const changes = { degraded: 0, recovered: 0 };
    if (measured.length === 0) return changes;
    const settings = await deps.settings();
    const holdMs = settings['device.linkDegradedHoldSeconds'] * 1000;
    const byDevice = new Map(measured.map((m) => [m.deviceId, m]));
    await deps.db.transaction(async (trx) => {
      const locked = await lockLinks(trx, [...byDevice.keys()].sort(), serverPolicy(settings));
      const links = locked.map((l) => {
        const stats = byDevice.get(l.deviceId)!.window;
        const judged = judgeLink(l.mark, stats, l.limits, now, holdMs);
        return { ...l, stats, ...judged };
      });
      await writeLinks(trx, links, now);
      await writeBuckets(
        trx,
        measured.flatMap((m) => m.buckets.map((b) => ({ ...b, deviceId: m.deviceId }))),
      );
      const events = links
        .filter((l) => l.changed)
        .map((l) => {
          changes[l.mark.state === 'degraded' ? 'degraded' : 'recovered']++;
          return clientEvent(
            l.mark.state === 'degraded' ? 'DEVICE_LINK_DEGRADED' : 'DEVICE_LINK_RECOVERED',
            l.deviceId,
            {
              p95Ms: l.stats.p95Ms,
              missShare: l.stats.missShare,
              limits: l.limits,
              rounds: l.stats.answered + l.stats.missed,
            },
            now,
          );
        });
      await appendEvents(trx, events);
    });
    return changes;
  };
}

export type RecordLinks = ReturnType<typeof createRecordLinks>;

/** Drops chart buckets older than a day; answers how many. */
export const createPruneLinkBuckets =
  (db: Db) =>
  (now = new Date()) =>
    pruneBuckets(db, new Date(now.getTime() - LINK_BUCKETS_KEPT_MS));
