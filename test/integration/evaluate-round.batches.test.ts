import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createConfirmRound } from '../../src/operations/confirm-round';
import { createConnectDevices } from '../../src/operations/connect-device';
import { createEvaluateRound } from '../../src/operations/evaluate-round';
import type { Db } from '../../src/db/knex';
import { disconnectDevices } from '../../src/db/transitions';
import { DISCONNECT_EFFECTS, type SessionEffects } from '../../src/domain/effects';
import { resolveSettings } from '../../src/domain/settings';
import { createLogger } from '../../src/logger';
import { createMetrics } from '../../src/metrics';
import { createRedis, type RedisClient } from '../../src/redis/connection';
import { redisKeys } from '../../src/redis/keys';
import { createBusLossStore } from '../../src/redis/bus-losses';
import { createLiveness } from '../../src/redis/liveness';
import { createRounds } from '../../src/redis/rounds';
import { createShardLeases } from '../../src/redis/shard-leases';
import { createTestDatabase, uniquePrefix } from '../support/database';
import { connectedDevices } from '../support/rows';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Db;
let redis: RedisClient;
beforeAll(async () => {
  database = await createTestDatabase();
  db = database.db;
  redis = createRedis(inject('redisUrl'), 'producer');
});
afterAll(async () => {
  redis.disconnect();
  await database.drop();
});

const SHARDS = 8;
const ALL_SHARDS = Array.from({ length: SHARDS }, (_, i) => i);

/**
 * Round 10, every round valid, with `silent` last heard in round 6 (miss 4 > max 3) among 500 devices
 * heard in round 10 (so the mass-silence brake does not hold it). Effects handed off are recorded.
 */
async function evaluationOf(silent: string[], options: { batchSize: number; parallelBatches: number }) {
  const keys = redisKeys(uniquePrefix());
  const liveness = createLiveness(redis, keys, SHARDS);
  const rounds = createRounds(redis, keys, SHARDS);
  for (let r = 1; r <= 10; r++) await rounds.close(r, ALL_SHARDS);
  await redis.hset(keys.rounds.meta(10), 'issuedAt', String(Date.now()), 'interval', '5');
  await liveness.seed(
    Array.from({ length: 500 }, (_, i) => `alive-${i}`),
    10,
  );
  await liveness.seed(silent, 6);
  const handOffs: SessionEffects[][] = [];
  const settings = async () => ({ ...resolveSettings(new Map()), 'recording.automatic': false });
  const evaluate = createEvaluateRound({
    db,
    liveness,
    busLosses: createBusLossStore(redis, keys, SHARDS),
    rounds,
    settings,
    connectDevices: createConnectDevices({ db, settings }),
    // The rounds were closed by hand, not by an issue: nothing waits for a gateway to vouch.
    confirmRound: createConfirmRound({
      rounds,
      leases: createShardLeases(redis, keys),
      shards: SHARDS,
      metrics: createMetrics('test'),
      logger: createLogger('silent'),
    }),
    handOffEffects: async (effects) => {
      handOffs.push([...effects]);
    },
    metrics: createMetrics('test'),
    logger: createLogger('silent'),
    ...options,
  });
  return {
    evaluate: () => evaluate(10),
    handOffs,
    claimed: async () => {
      const counts = await Promise.all(
        ALL_SHARDS.map((sh) => redis.hlen(keys.liveness.shard(sh).claimed(10))),
      );
      return counts.reduce((a, b) => a + b, 0);
    },
  };
}

const countWhere = async (query: Knex.QueryBuilder) =>
  Number((await query.count<{ n: string }[]>('* as n'))[0]!.n);
const disconnectedAmong = (ids: string[]) =>
  countWhere(db('devices').whereIn('id', ids).where({ status: 'DISCONNECTED' }));

describe('evaluation of a round with many devices past the threshold', () => {
  it('disconnects each once, over several passes of parallel batches, and hands their effects off once', async () => {
    const silent = await connectedDevices(db, 230);
    const e = await evaluationOf(silent, { batchSize: 40, parallelBatches: 3 });
    expect(await e.evaluate()).toEqual({ round: 10, outcome: 'valid', disconnected: 230, reconnected: 0 });

    expect(await disconnectedAmong(silent)).toBe(230);
    const sessions: { id: string; device_id: string; rounds_missed: number }[] = await db(
      'connection_sessions',
    )
      .whereIn('device_id', silent)
      .where({ end_reason: 'MISSED_HEARTBEATS' })
      .select('id', 'device_id', 'rounds_missed');
    expect(new Set(sessions.map((s) => s.device_id)).size).toBe(230);
    expect(sessions.every((s) => s.rounds_missed === 4)).toBe(true);
    const events = await db('outbox').whereIn('device_id', silent).where({ type: 'DEVICE_DISCONNECTED' });
    expect(events).toHaveLength(230);
    expect(
      await countWhere(
        db('effects').whereIn(
          'session_id',
          sessions.map((s) => s.id),
        ),
      ),
    ).toBe(230 * DISCONNECT_EFFECTS.length);

    // One hand-off, after every decision, naming each ended session once with its effects.
    expect(e.handOffs).toHaveLength(1);
    expect(e.handOffs[0]!.map((h) => h.sessionId).sort()).toEqual(sessions.map((s) => s.id).sort());
    expect(e.handOffs[0]!.every((h) => h.effects.length === DISCONNECT_EFFECTS.length)).toBe(true);
    expect(await e.claimed()).toBe(0);

    // Run again (a duplicate job): nothing left to do.
    expect((await e.evaluate()).disconnected).toBe(0);
    expect(e.handOffs).toHaveLength(1);
  });

  it('a failing batch stays claimed while the others commit and are handed off; the retry ends it', async () => {
    const silent = await connectedDevices(db, 120);
    // A real fault in Postgres: updating this one device raises, which rolls back its whole batch.
    await db.raw(`CREATE TABLE doomed (id uuid PRIMARY KEY)`);
    await db.raw(
      `CREATE FUNCTION refuse_doomed() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF EXISTS (SELECT 1 FROM doomed WHERE id = NEW.id) THEN RAISE EXCEPTION 'injected fault'; END IF;
         RETURN NEW;
       END $$`,
    );
    await db.raw(
      `CREATE TRIGGER refuse_doomed BEFORE UPDATE ON devices FOR EACH ROW EXECUTE FUNCTION refuse_doomed()`,
    );
    await db('doomed').insert({ id: silent[0] });
    const e = await evaluationOf(silent, { batchSize: 40, parallelBatches: 3 });

    await expect(e.evaluate()).rejects.toThrow(/injected fault/);
    expect(await disconnectedAmong(silent)).toBe(80);
    expect(await e.claimed()).toBe(40);
    expect(e.handOffs).toHaveLength(1);
    expect(e.handOffs[0]).toHaveLength(80);

    await db('doomed').delete();
    expect((await e.evaluate()).disconnected).toBe(40);
    expect(await disconnectedAmong(silent)).toBe(120);
    expect(await e.claimed()).toBe(0);
    expect(e.handOffs.map((h) => h.length)).toEqual([80, 40]);
    const endedPerDevice: { n: string }[] = await db('connection_sessions')
      .whereIn('device_id', silent)
      .whereNotNull('ended_at')
      .groupBy('device_id')
      .select(db.raw('count(*) AS n'));
    expect(endedPerDevice).toHaveLength(120);
    expect(endedPerDevice.every((r) => Number(r.n) === 1)).toBe(true);
    expect(
      await countWhere(db('outbox').whereIn('device_id', silent).where({ type: 'DEVICE_DISCONNECTED' })),
    ).toBe(120);
    await db.raw(`DROP TRIGGER refuse_doomed ON devices`);
  });

  it('parses its input once and probes devices by key, with or without statistics', async () => {
    // A database of its own, never analyzed (autovacuum off), as after a first mass registration.
    const own = await createTestDatabase();
    const db = own.db;
    await db.raw(`ALTER TABLE devices SET (autovacuum_enabled = off)`);
    const fleet = await connectedDevices(db, 4000);
    /** The plan of the statement that locks and disconnects these candidates, as Postgres ran it. */
    const planOf = async (candidates: string[]) => {
      const statements: { sql: string; bindings: unknown }[] = [];
      const capture = (q: { sql: string; bindings: unknown }) => statements.push(q);
      db.on('query', capture);
      try {
        await disconnectDevices(
          db,
          candidates.map((deviceId) => ({
            deviceId,
            beforeRound: null,
            missedRounds: 4,
            lastRoundHeard: 6,
            lastHeartbeatAt: null,
          })),
          'MISSED_HEARTBEATS',
        );
      } finally {
        db.off('query', capture);
      }
      const first = statements.find((q) => q.sql.includes('UPDATE devices'))!;
      // Run again on rows put back as they were, in a transaction that is rolled back.
      return db
        .transaction(async (trx) => {
          await trx('devices').whereIn('id', candidates).update({ status: 'CONNECTED' });
          const { rows } = await trx.raw<{ rows: { 'QUERY PLAN': { Plan: PlanNode }[] }[] }>(
            // The captured text is in Postgres' $n form; knex binds `?`.
            `EXPLAIN (ANALYZE, FORMAT JSON) ${first.sql.replace(/\$\d+/g, '?')}`,
            first.bindings as readonly string[],
          );
          throw new PlanFound(rows[0]!['QUERY PLAN'][0]!.Plan);
        })
        .catch((e: unknown) => {
          if (e instanceof PlanFound) return e.plan;
          throw e;
        });
    };
    const check = (plan: PlanNode, n: number) => {
      const nodes = flatten(plan);
      // The input is parsed once, not once per device row (which once made a batch quadratic).
      const functionScans = nodes.filter((p) => p['Node Type'] === 'Function Scan');
      expect(functionScans.length).toBeGreaterThan(0);
      expect(functionScans.every((p) => p['Actual Loops'] === 1)).toBe(true);
      // The candidates are found and locked by key, one probe each, never by a scan of the table.
      const locking = nodes.filter((p) => p['Node Type'] === 'LockRows').flatMap(flatten);
      const reads = locking.filter((p) => p['Relation Name'] === 'devices');
      expect(reads.length).toBeGreaterThan(0);
      expect(reads.every((p) => p['Node Type'] === 'Index Scan' && p['Index Name'] === 'devices_pkey')).toBe(
        true,
      );
      expect(reads.reduce((sum, p) => sum + p['Actual Loops'], 0)).toBe(n);
    };
    // Never analyzed: the planner guesses that few devices are CONNECTED.
    check(await planOf(fleet.slice(0, 500)), 500);
    await db.raw('ANALYZE devices');
    check(await planOf(fleet.slice(500, 1000)), 500);
    await own.drop();
  });
});

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Actual Loops': number;
  'Rows Removed by Join Filter'?: number;
  Plans?: PlanNode[];
}
const flatten = (p: PlanNode): PlanNode[] => [p, ...(p.Plans ?? []).flatMap(flatten)];
class PlanFound extends Error {
  constructor(readonly plan: PlanNode) {
    super('plan found');
  }
}
