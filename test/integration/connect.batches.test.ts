import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDevices, disconnectDevices } from '../../src/db/transitions';
import { flapPolicy } from '../../src/domain/flapping';
import { SETTING_DEFAULTS } from '../../src/domain/settings';
import { createTestDatabase } from '../support/database';
import { connectedDevices, insertDevices } from '../support/rows';

// A fleet's first heartbeats are connected in batches, one transaction each. Batches race each other
// (two gateways during a handover), the evaluation's disconnects and a robot's goodbye: every device
// must come out with exactly one transition per race, and its rows, events and effects agreeing.

let database: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => database.drop());

const options = { automaticRecording: true, flap: flapPolicy(SETTING_DEFAULTS) };
const heard = (ids: readonly string[], round: number) => ids.map((deviceId) => ({ deviceId, round }));

/**
 * For each device: its status, its open sessions, and its DEVICE_CONNECTED / DEVICE_DISCONNECTED
 * events and start-recording effects, counted.
 */
async function ledger(ids: readonly string[]) {
  const { rows } = await database.db.raw<{
    rows: {
      id: string;
      status: string;
      current: string | null;
      open: string[] | null;
      sessions: string;
      connected: string;
      disconnected: string;
      effects: string;
    }[];
  }>(
    `SELECT d.id, d.status, d.current_session_id AS current,
            (SELECT array_agg(s.id) FROM connection_sessions s WHERE s.device_id = d.id AND s.ended_at IS NULL) AS open,
            (SELECT count(*) FROM connection_sessions s WHERE s.device_id = d.id) AS sessions,
            (SELECT count(*) FROM outbox o WHERE o.device_id = d.id AND o.type = 'DEVICE_CONNECTED') AS connected,
            (SELECT count(*) FROM outbox o WHERE o.device_id = d.id AND o.type = 'DEVICE_DISCONNECTED') AS disconnected,
            (SELECT count(*) FROM effects e WHERE e.device_id = d.id AND e.kind = 'start-recording') AS effects
       FROM devices d WHERE d.id = ANY(?::uuid[])`,
    [ids as string[]],
  );
  return rows;
}

describe('connects in batches', () => {
  it('two gateways connecting overlapping batches at once connect each device once', async () => {
    const ids = await insertDevices(database.db, 600);
    // Each takes the fleet in its own order and its own slices: every device is in two batches.
    const first = ids.slice(0, 400);
    const second = [...ids.slice(200)].reverse();
    const results = await Promise.all([
      connectDevices(database.db, heard(first.slice(0, 200), 3), options),
      connectDevices(database.db, heard(second.slice(0, 250), 3), options),
      connectDevices(database.db, heard(first.slice(200), 3), options),
      connectDevices(database.db, heard(second.slice(250), 3), options),
    ]);
    const sessions = results.flat();
    expect(sessions).toHaveLength(600);
    expect(new Set(sessions.map((s) => s.deviceId)).size).toBe(600);
    for (const row of await ledger(ids)) {
      expect(row.status).toBe('CONNECTED');
      expect(row.open).toEqual([row.current]);
      expect([row.sessions, row.connected, row.effects]).toEqual(['1', '1', '1']);
    }
    // And again, now that they are connected: nothing happens.
    expect(await connectDevices(database.db, heard(ids, 4), options)).toEqual([]);
  });

  it('a batch racing the evaluation and goodbyes leaves every device consistent', async () => {
    // Connected in round 1, silent since: the evaluation disconnects them while their recovered
    // heartbeats (round 6) are connected again, and some say goodbye at the same time.
    const ids = await connectedDevices(database.db, 500);
    const candidates = ids.map((deviceId) => ({
      deviceId,
      beforeRound: 6,
      missedRounds: 3,
      lastRoundHeard: 1,
      lastHeartbeatAt: null,
    }));
    const [ended, , goodbyes, again] = await Promise.all([
      disconnectDevices(database.db, candidates.slice(0, 300), 'MISSED_HEARTBEATS'),
      connectDevices(database.db, heard(ids, 6), options),
      disconnectDevices(database.db, candidates.slice(250), 'PLANNED'),
      connectDevices(database.db, heard([...ids].reverse(), 6), options),
    ]);
    // A device is disconnected once whichever ended it (a session begun in round 6 is not theirs).
    expect(ended.length + goodbyes.length).toBe(500);
    expect(again.length).toBeLessThanOrEqual(500);
    const after = await connectDevices(database.db, heard(ids, 7), options);
    for (const row of await ledger(ids)) {
      expect(Number(row.disconnected)).toBe(1);
      expect(row.status).toBe('CONNECTED');
      expect(row.open).toEqual([row.current]);
      // The first session, and one more begun after its end.
      expect([row.sessions, row.connected, row.effects]).toEqual(['2', '1', '1']);
    }
    expect(again.length + after.length).toBe(500);
  });
});
