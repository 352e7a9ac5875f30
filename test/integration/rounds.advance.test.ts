import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRedis, type RedisClient } from '../../src/redis/connection';
import { redisKeys } from '../../src/redis/keys';
import { createRounds } from '../../src/redis/rounds';
import { createLogger } from '../../src/logger';
import { createMetrics } from '../../src/metrics';
import { createIssueRound } from '../../src/operations/issue-round';
import { uniquePrefix } from '../support/database';

let redis: RedisClient;
beforeAll(() => {
  redis = createRedis(inject('redisUrl'), 'producer');
});
afterAll(() => redis.disconnect());

function fresh() {
  const keys = redisKeys(uniquePrefix());
  return { keys, rounds: createRounds(redis, keys, 4) };
}

describe('issuing a round number', () => {
  it('issues each tick once; a re-run gets the same number and keeps the first facts', async () => {
    const { rounds } = fresh();
    expect(await rounds.advance('tick-a', 10_000, 10_010, 800, 1)).toEqual({ round: 1, fresh: true });
    const first = await rounds.meta(1);
    expect(first).toMatchObject({ round: 1, issuedAt: 10_010, intervalSeconds: 1 });
    expect(first!.nonce).toMatch(/.+/);
    expect(await rounds.advance('tick-a', 10_000, 10_500, 800, 1)).toEqual({ round: 1, fresh: false });
    expect(await rounds.meta(1)).toEqual(first);
    // Too soon after the last tick: no number; a tick far enough after gets the next one.
    expect(await rounds.advance('tick-b', 10_500, 10_510, 800, 1)).toEqual({ round: 0, fresh: false });
    expect(await rounds.advance('tick-c', 11_000, 11_005, 800, 1)).toEqual({ round: 2, fresh: true });
    expect(await rounds.meta(2)).toMatchObject({ issuedAt: 11_005 });
  });

  it('a re-run writes the facts a crash between the two steps left unwritten', async () => {
    const { keys, rounds } = fresh();
    await rounds.advance('tick-a', 10_000, 10_010, 800, 1);
    await redis.del(keys.rounds.meta(1));
    expect(await rounds.meta(1)).toBeNull();
    expect(await rounds.advance('tick-a', 10_000, 10_700, 800, 2)).toEqual({ round: 1, fresh: false });
    expect(await rounds.meta(1)).toMatchObject({ round: 1, issuedAt: 10_700, intervalSeconds: 2 });
  });
});

describe('a scheduler tick', () => {
  it('run past half an interval issues no round and says so; the next, on time, issues one', async () => {
    const { rounds } = fresh();
    const metrics = createMetrics('test');
    const logged: { msg: string; lateMs?: number }[] = [];
    const logger = createLogger('warn', 'test', {
      write: (line: string) => void logged.push(JSON.parse(line) as { msg: string; lateMs?: number }),
    });
    const announced: number[] = [];
    let now = 100_000;
    const issue = createIssueRound({
      rounds,
      leases: { all: async () => new Map() },
      shards: 4,
      announce: async (round) => void announced.push(round),
      intervalSeconds: async () => 2,
      ensureLivenessState: async () => {},
      enqueueEvaluation: async () => {},
      reschedule: async () => {},
      metrics,
      logger,
      now: () => now,
    });
    const skipped = async (why: string) =>
      (await metrics.roundTicksSkipped.get()).values.find((v) => v.labels.why === why)?.value ?? 0;

    expect(await issue('tick-1', now - 20)).toMatchObject({ round: 1 });
    now += 3200;
    // Due 1.2 s ago, past half the 2 s interval: robots would get two rounds in a burst.
    expect(await issue('tick-2', now - 1200)).toEqual({ skipped: 'late' });
    expect(await skipped('late')).toBe(1);
    expect(logged).toContainEqual(
      expect.objectContaining({ msg: 'round tick skipped: it ran too late', lateMs: 1200 }),
    );
    now += 800;
    expect(await issue('tick-3', now - 10)).toMatchObject({ round: 2 });
    // Too soon after round 2: no round, counted apart.
    now += 500;
    expect(await issue('tick-4', now)).toEqual({ skipped: 'too-soon' });
    expect(await skipped('too-soon')).toBe(1);
    expect(announced).toEqual([1, 2]);
  });
});
