// Every consumer is started from the queue table: each queue's worker runs as many of its jobs at once
// as the table says, and the jobs producers add reach it, with the table's job options.
import type { Job } from 'bullmq';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createLogger } from '../../src/logger';
import { bullConnection, createQueues } from '../../src/queues/connection';
import { startConsumers } from '../../src/queues/consumers';
import { effectQueue, QUEUE_TABLE } from '../../src/queues/table';
import { waitFor } from '../../src/dev/processes';
import { uniquePrefix } from '../support/database';

const prefix = uniquePrefix();
const connection = bullConnection(inject('redisUrl'), 'worker');
const queues = createQueues(bullConnection(inject('redisUrl'), 'producer'), prefix);
afterAll(() => queues.close());

describe('consumers started from the queue table', () => {
  it('run each queue at its concurrency, and take the jobs its producer adds', async () => {
    const seen: Job<{ round: number }>[] = [];
    let running = 0;
    let most = 0;
    const effectJobs: string[] = [];
    const workers = await startConsumers(
      {
        queues: {
          evaluateRound: async (job) => {
            seen.push(job);
            most = Math.max(most, ++running);
            await new Promise((resolve) => setTimeout(resolve, 300));
            running--;
          },
        },
        effects: new Map([
          ['stop-recording', async (job) => void effectJobs.push(job.data.sessionId)],
        ] as const),
      },
      { connection, prefix },
      createLogger('silent'),
    );
    try {
      expect(workers.map((w) => [w.name, w.opts.concurrency])).toEqual([
        [QUEUE_TABLE.evaluateRound.name, QUEUE_TABLE.evaluateRound.concurrency],
        [effectQueue('stop-recording').name, effectQueue('stop-recording').concurrency],
      ]);
      for (const round of [1, 2, 3, 4]) await queues.enqueueEvaluation(round);
      await waitFor(() => seen.length === 4, 10_000, 'four evaluations');
      // As many at once as the table allows, no more.
      expect(most).toBe(QUEUE_TABLE.evaluateRound.concurrency);
      expect(seen[0]!.opts.attempts).toBe(QUEUE_TABLE.evaluateRound.jobOptions.attempts);
      expect(seen.map((j) => j.data.round).sort()).toEqual([1, 2, 3, 4]);

      await queues.enqueueEffectRows([{ sessionId: 's-1', deviceId: 'd-1', kind: 'stop-recording' }], {
        attempts: 2,
        backoffMs: 100,
      });
      await waitFor(() => effectJobs.length === 1, 10_000, 'the effect job');
      expect(effectJobs).toEqual(['s-1']);
    } finally {
      await Promise.all(workers.map((w) => w.close()));
    }
  });
});
