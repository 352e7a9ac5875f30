import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents, numberPending, STREAM_PAGE_BYTES } from '../../src/db/outbox';
import { clientEvent } from '../../src/domain/events';
import { admin, createTestApp } from '../support/app';

let t: Awaited<ReturnType<typeof createTestApp>>;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

describe('a page of a feed', () => {
  it('ends before its JSON passes 1 MiB, whatever the limit asks; paging on gives every event once', async () => {
    // 40 events of 100 KB each (a task's payload can be that large): 4 MB in all.
    const big = 'p'.repeat(100_000);
    await appendEvents(
      t.db,
      Array.from({ length: 40 }, (_, i) => clientEvent('HEALTHCHECK_ROUND_HELD', null, { round: i, big })),
    );
    while ((await numberPending(t.db, 1000)) > 0);

    const seqs: number[] = [];
    let pages = 0;
    for (let after = 0; ; pages++) {
      const res = await request(t.callback).get('/events').query({ after, limit: 1000 }).set(admin);
      expect(res.status).toBe(200);
      const page = res.body as { events: { seq: number; round: number }[]; last: number };
      if (page.events.length === 0) break;
      expect(Buffer.byteLength(JSON.stringify(page.events))).toBeLessThan(STREAM_PAGE_BYTES + 64 * 1024);
      seqs.push(...page.events.map((e) => e.seq));
      after = page.last;
    }
    expect(pages).toBeGreaterThanOrEqual(4);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(seqs).toHaveLength(40);
  });
});
