import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selectStalePending } from '../../src/db/effects';
import { connectDevice } from '../../src/db/transitions';
import { flapPolicy } from '../../src/domain/flapping';
import { SETTING_DEFAULTS } from '../../src/domain/settings';
import { createTestDatabase } from '../support/database';
import { insertDevices } from '../support/rows';

// The connect effects of a flapping device wait for the hold time: the sweeper leaves them alone
// until then, so a lost hand-off cannot start a recording early.

let database: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => database.drop());

async function deviceWithFailures(failures: number) {
  const id = (await insertDevices(database.db, 1))[0]!;
  for (let i = 0; i < failures; i++)
    await database.db('connection_sessions').insert({
      id: randomUUID(),
      device_id: id,
      started_round: 1,
      started_at: new Date(Date.now() - 60_000),
      ended_at: new Date(Date.now() - 30_000 + i),
      end_reason: 'MISSED_HEARTBEATS',
    });
  return id;
}

describe('held connect effects', () => {
  it('a flapping device connects with its effects due after the hold; the sweeper waits for it', async () => {
    const flap = { ...flapPolicy(SETTING_DEFAULTS), holdSeconds: 2 };
    const [flapping, steady] = [await deviceWithFailures(4), await deviceWithFailures(3)];
    const held = await connectDevice(database.db, flapping, 5, { automaticRecording: true, flap });
    const now = await connectDevice(database.db, steady, 5, { automaticRecording: true, flap });
    expect(held!.notBefore! - Date.now()).toBeGreaterThan(1500);
    expect(now!.notBefore).toBeUndefined();
    const pending = async () => (await selectStalePending(database.db, 0, 100)).map((e) => e.deviceId);
    await new Promise((r) => setTimeout(r, 100));
    expect(await pending()).toEqual([steady]);
    await new Promise((r) => setTimeout(r, 2100));
    expect((await pending()).sort()).toEqual([flapping, steady].sort());
  });
});
