import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endStableBuses, markBusesUnstable } from '../../src/db/unstable-buses';
import { createTestDatabase } from '../support/database';
import { insertDevices } from '../support/rows';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => database.drop());

const eventsOf = (type: string) =>
  database.db('outbox').where({ type }).orderBy('id').pluck('device_id') as Promise<string[]>;

describe('the unstable-bus mark', () => {
  it('begins once per episode, with one event, and ends after the window without a loss', async () => {
    const db = database.db;
    const [a, b, gone] = await insertDevices(db, 3);
    await db('devices').where({ id: gone }).update({ deleted_at: db.fn.now() });
    const fields = { losses: 3, windowSeconds: 600 };

    expect(await markBusesUnstable(db, [a!, gone!], fields)).toEqual([a]);
    expect(await markBusesUnstable(db, [a!, b!], fields)).toEqual([b]);
    expect((await eventsOf('DEVICE_BUS_UNSTABLE')).sort()).toEqual([a, b].sort());

    // a's last loss was 11 minutes ago, b's just now: only a's mark ends.
    await db('devices')
      .where({ id: a })
      .update({ bus_lost_at: db.raw(`now() - interval '11 minutes'`) });
    expect(await endStableBuses(db, 600)).toBe(1);
    expect(await eventsOf('DEVICE_BUS_STABLE')).toEqual([a]);
    const marks = await db('devices')
      .whereIn('id', [a!, b!])
      .orderBy('id')
      .select('id', 'bus_unstable_since');
    expect(marks.find((m: { id: string }) => m.id === a)).toMatchObject({ bus_unstable_since: null });
    expect(marks.find((m: { id: string }) => m.id === b)).not.toMatchObject({ bus_unstable_since: null });
    expect(await endStableBuses(db, 600)).toBe(0);
  });
});
