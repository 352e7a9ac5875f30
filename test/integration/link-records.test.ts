import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SETTING_DEFAULTS, type SettingValues } from '../../src/domain/settings';
import { linkStats, MISSED } from '../../src/domain/link';
import { putGroupPolicy } from '../../src/db/policies';
import { fullPolicy } from '../../src/domain/policy';
import { createPruneLinkBuckets, createRecordLinks } from '../../src/operations/record-links';
import { createTestDatabase } from '../support/database';
import { insertDevices } from '../support/rows';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => database.drop());

const settings: SettingValues = { ...SETTING_DEFAULTS, 'device.linkDegradedHoldSeconds': 0 };
/** A window of 20 answers at `ms`, and `misses` rounds missed. */
const window = (ms: number, misses = 0) =>
  linkStats([...Array<number>(20).fill(ms), ...Array<number>(misses).fill(MISSED)]);

describe('recording link figures', () => {
  it("holds each link to its own limits, else its group's, else the server's, with events and hysteresis", async () => {
    const db = database.db;
    const record = createRecordLinks({ db, settings: async () => settings });
    const [own, grouped, server, gone] = await insertDevices(db, 4, { status: 'CONNECTED' });
    await db('devices').where({ id: own }).update({ link_max_p95_ms: 100 });
    await putGroupPolicy(db, 'slow-lane', fullPolicy({ linkMaxP95Ms: 100, linkMaxMissShare: 0.5 }));
    await db('devices').where({ id: grouped }).update({ group_name: 'slow-lane' });
    await db('devices').where({ id: gone }).update({ deleted_at: db.fn.now() });
    const measured = (ms: number, misses = 0) =>
      [own, grouped, server, gone].map((deviceId) => ({
        deviceId: deviceId!,
        window: window(ms, misses),
        buckets: [],
      }));
    const events = () =>
      db('outbox')
        .whereLike('type', 'DEVICE_LINK_%')
        .orderBy('id')
        .select<{ type: string; device_id: string; body: { limits: unknown } }[]>(
          'type',
          'device_id',
          'body',
        );

    // 200 ms: over 100 (own, group), under the server's 500.
    expect(await record(measured(200))).toEqual({ degraded: 2, recovered: 0 });
    expect((await events()).map((e) => [e.type, e.device_id]).sort()).toEqual(
      [
        ['DEVICE_LINK_DEGRADED', own],
        ['DEVICE_LINK_DEGRADED', grouped],
      ].sort(),
    );
    expect((await events()).find((e) => e.device_id === grouped)!.body.limits).toEqual({
      maxP95Ms: 100,
      maxMissShare: 0.5,
    });
    const rows = await db('device_links').orderBy('device_id');
    expect(rows.map((r: { device_id: string }) => r.device_id).sort()).toEqual([own, grouped, server].sort());

    // 90 ms: under the limit but over 80 % of it: still degraded, nothing said.
    expect(await record(measured(90))).toEqual({ degraded: 0, recovered: 0 });
    // 50 ms: recovered, once each.
    expect(await record(measured(50))).toEqual({ degraded: 0, recovered: 2 });
    expect(await record(measured(50))).toEqual({ degraded: 0, recovered: 0 });
    // Misses: the server's 0.2 and the group's 0.5. 10 missed of 30 (a third): the server's and own are past it.
    expect(await record(measured(50, 10))).toEqual({ degraded: 2, recovered: 0 });
    const last = (await events())
      .slice(-2)
      .map((e) => e.device_id)
      .sort();
    expect(last).toEqual([own, server].sort());
  });

  it('writes chart buckets (again as they fill) and drops those past their day', async () => {
    const db = database.db;
    const record = createRecordLinks({ db, settings: async () => settings });
    const [id] = await insertDevices(db, 1, { status: 'CONNECTED' });
    const startsAt = new Date(Math.floor(Date.now() / 300_000) * 300_000);
    const old = new Date(startsAt.getTime() - 25 * 3600_000);
    await record([
      {
        deviceId: id!,
        window: window(30),
        buckets: [
          { startsAt: old, stats: window(40) },
          { startsAt, stats: window(30) },
        ],
      },
    ]);
    await record([{ deviceId: id!, window: window(30), buckets: [{ startsAt, stats: window(35, 2) }] }]);
    const buckets = await db('link_buckets').where({ device_id: id }).orderBy('starts_at');
    expect(buckets.map((b: { p95_ms: number; missed: number }) => [b.p95_ms, b.missed])).toEqual([
      [40, 0],
      [35, 2],
    ]);
    expect(await createPruneLinkBuckets(db)()).toBe(1);
    expect(await db('link_buckets').where({ device_id: id }).count<{ n: string }[]>('* as n')).toEqual([
      { n: '1' },
    ]);
  });
});
