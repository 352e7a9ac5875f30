import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Knex } from 'knex';
import { markHeardOnBus, markProofsOnly, markTokenExposed } from '../../src/db/devices';
import { lockLinks } from '../../src/db/links';
import { connectDevices, disconnectDevices } from '../../src/db/transitions';
import { flapPolicy } from '../../src/domain/flapping';
import { SETTING_DEFAULTS, serverPolicy } from '../../src/domain/settings';
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

  it('marks on many devices wait for a connect holding some of their rows, and never deadlock with it', async () => {
    // A fleet's first heartbeats: the gateway notes the bus each robot is heard on (and, for some, a
    // token heard in a text frame or a first proof) while its connects lock the same rows, in id order.
    const marks = [
      { mark: (ids: string[]) => markHeardOnBus(database.db, ids, 'own'), done: "heard_on_bus = 'own'" },
      { mark: (ids: string[]) => markTokenExposed(database.db, ids), done: 'token_exposed_at IS NOT NULL' },
      { mark: (ids: string[]) => markProofsOnly(database.db, ids), done: 'proofs_since IS NOT NULL' },
    ];
    for (const { mark, done } of marks) {
      const ids = await insertDevices(database.db, 2000);
      const [first, ...rest] = [...ids].sort();
      let marked: Promise<void> | undefined;
      await database.db.transaction(async (trx) => {
        // The connect has locked its first row; the mark starts, and waits for that row...
        await connectDevices(trx, heard([first!], 3), options);
        marked = mark(ids);
        await sleep(300);
        // ...while the connect locks the rest in its order: had the mark taken some of them in the
        // table's order, each would wait for the other until Postgres ended one (deadlock detected).
        await connectDevices(trx, heard(rest, 3), options);
      });
      await marked;
      const { rows } = await database.db.raw<{ rows: { connected: string; marked: string }[] }>(
        `SELECT count(*) FILTER (WHERE status = 'CONNECTED') AS connected, count(*) FILTER (WHERE ${done}) AS marked
           FROM devices WHERE id = ANY(?::uuid[])`,
        [ids],
      );
      expect(rows[0]).toEqual({ connected: '2000', marked: '2000' });
    }
  });

  it('a link report in progress holds neither the connects nor the disconnects of its devices', async () => {
    // A gateway's link report writes the link rows and chart buckets of every robot it measured in
    // one transaction (~1 s for 10,000 in a storm), robots heard but not yet connected among them:
    // their foreign keys share-lock the devices' keys, which a transition, updating no key, passes.
    const ids = await insertDevices(database.db, 200);
    const withoutWaiting = <T>(run: (trx: Knex.Transaction) => Promise<T>) =>
      database.db.transaction(async (trx) => {
        await trx.raw("SET LOCAL lock_timeout = '1s'");
        return run(trx);
      });
    const report = await database.db.transaction();
    try {
      await lockLinks(report, ids, serverPolicy(SETTING_DEFAULTS));
      const connected = await withoutWaiting((trx) => connectDevices(trx, heard(ids, 3), options));
      expect(connected).toHaveLength(200);
      const silent = ids.map((deviceId) => ({
        deviceId,
        beforeRound: 6,
        missedRounds: 3,
        lastRoundHeard: 3,
        lastHeartbeatAt: null,
      }));
      const ended = await withoutWaiting((trx) => disconnectDevices(trx, silent, 'MISSED_HEARTBEATS'));
      expect(ended).toHaveLength(200);
    } finally {
      await report.commit();
    }
  });
});
