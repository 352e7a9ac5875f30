import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents, numberPending, readStream, unpublishedCommands } from '../../src/db/outbox';
import { clientEvent, type OutgoingEvent, type PlatformEvent } from '../../src/domain/events';
import { createOutboxPublisher } from '../../src/streams/outbox-publisher';
import { createLogger } from '../../src/logger';
import { createMetrics } from '../../src/metrics';
import { createSequencer } from '../../src/streams/sequencer';
import { createTestDatabase } from '../support/database';

// Events are numbered at commit, whatever Moth does; then each stream is published on its own: the
// client stream, and each robot's commands, so nothing waits behind a stream that cannot be sent.

let database: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => database.drop());

const command = (deviceId: string, taskId: string): OutgoingEvent => ({
  channel: 'device',
  event: {
    type: 'TASK_ABORTED',
    eventId: randomUUID(),
    occurredAt: new Date().toISOString(),
    deviceId,
    taskId,
  },
});
const logger = createLogger('silent');

describe('events numbered at commit', () => {
  it('numbers each event in its stream within moments of its commit, with nothing on Moth', async () => {
    // Its poll far behind (10 s): only the commit's notification can number an event within the bound.
    const sequencer = createSequencer({ db: database.db, logger, pollMs: 10_000 });
    sequencer.start();
    try {
      const device = randomUUID();
      // Give the sequencer's listener time to join: from then on a commit's NOTIFY wakes it.
      await new Promise((r) => setTimeout(r, 300));
      const latencies: number[] = [];
      for (let i = 1; i <= 5; i++) {
        const committed = Date.now();
        await appendEvents(database.db, [clientEvent('DEVICE_CONNECTED', device), command(device, `t${i}`)]);
        while ((await readStream(database.db, 'client', i - 1, 10)).length === 0)
          await new Promise((r) => setTimeout(r, 2));
        latencies.push(Date.now() - committed);
        await new Promise((r) => setTimeout(r, 50 + 37 * i));
      }
      // Woken by each commit (typically within a few ms; the bound leaves room for a loaded machine).
      expect(Math.max(...latencies)).toBeLessThan(1000);
      const client = await readStream(database.db, 'client', 0, 10);
      expect(client.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
      const commands = await readStream(database.db, `device:${device}`, 0, 10);
      expect(commands.map((e) => [e.seq, e.body.type])).toEqual(
        [1, 2, 3, 4, 5].map((n) => [n, 'TASK_ABORTED']),
      );
      expect(await database.db('outbox').whereNotNull('published_at').count({ n: '*' })).toEqual([
        { n: '0' },
      ]);
    } finally {
      await sequencer.stop();
    }
  });
});

describe('each stream published on its own', () => {
  it('a robot whose bus fails holds only its own stream; client events down hold no command', async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    await appendEvents(database.db, [
      ...Array.from({ length: 5 }, () => clientEvent('DEVICE_CONNECTED', b)),
      ...Array.from({ length: 3 }, (_, i) => command(a, `a${i}`)),
      ...Array.from({ length: 3 }, (_, i) => command(b, `b${i}`)),
    ]);
    const sequencer = createSequencer({ db: database.db, logger });
    sequencer.start();
    const sent: PlatformEvent[] = [];
    let aDown = true;
    const publisher = createOutboxPublisher({
      db: database.db,
      metrics: createMetrics('test'),
      logger,
      sign: async (e) => e,
      // The client channel is down the whole time.
      sendClient: () => Promise.reject(new Error('Moth session is not open')),
      sendCommand: async (body) => {
        const e = body as PlatformEvent;
        if (e.deviceId === a && aDown) throw new Error("a's bus refused");
        sent.push(e);
      },
    });
    try {
      await new Promise((r) => setTimeout(r, 300));
      await publisher.publishOnce().catch(() => {});
      const taskIds = () =>
        sent
          .filter((e) => e.deviceId === a || e.deviceId === b)
          .map((e) => (e as unknown as { taskId: string }).taskId);
      expect(taskIds()).toEqual(['b0', 'b1', 'b2']);
      // a's bus is back: its stream goes after its rest, in order; the client stream still waits.
      aDown = false;
      await new Promise((r) => setTimeout(r, 600));
      await publisher.publishOnce().catch(() => {});
      expect(taskIds()).toEqual(['b0', 'b1', 'b2', 'a0', 'a1', 'a2']);
      const unpublished = await database
        .db('outbox')
        .whereIn('device_id', [a, b])
        .whereNull('published_at')
        .pluck('stream');
      expect(unpublished).toEqual(['client', 'client', 'client', 'client', 'client']);
    } finally {
      await publisher.stop();
      await sequencer.stop();
    }
  });
});

describe('the publishers woken by the numberings', () => {
  it('each by those of its own kind of stream only: client events do not wake the commands', async () => {
    const db = database.db;
    // Polls far behind: only a numbering's notification wakes a publisher within the test.
    const sequencer = createSequencer({ db, logger, pollMs: 10_000 });
    const sentClient: PlatformEvent[] = [];
    const sentCommands: PlatformEvent[] = [];
    const publisher = createOutboxPublisher({
      db,
      metrics: createMetrics('test'),
      logger,
      sign: async (e) => e,
      sendClient: async (body) => void sentClient.push(body as PlatformEvent),
      sendCommand: async (body) => void sentCommands.push(body as PlatformEvent),
      pollMs: 60_000,
    });
    let commandReads = 0;
    const countReads = (q: { sql: string }) => {
      if (q.sql.includes('PARTITION BY stream')) commandReads++;
    };
    const device = randomUUID();
    const waitFor = async (done: () => boolean) => {
      for (const until = Date.now() + 3000; !done() && Date.now() < until;)
        await new Promise((r) => setTimeout(r, 20));
    };
    sequencer.start();
    publisher.start();
    try {
      // The listeners join, and each loop's first pass is over.
      await new Promise((r) => setTimeout(r, 500));
      db.on('query', countReads);
      for (let i = 0; i < 5; i++) {
        await appendEvents(db, [clientEvent('DEVICE_CONNECTED', device)]);
        await waitFor(() => sentClient.filter((e) => e.deviceId === device).length === i + 1);
      }
      expect(sentClient.filter((e) => e.deviceId === device)).toHaveLength(5);
      expect(commandReads).toBe(0);
      await appendEvents(db, [command(device, 't1')]);
      await waitFor(() => sentCommands.length === 1);
      expect(sentCommands.map((e) => e.deviceId)).toEqual([device]);
      expect(commandReads).toBeGreaterThan(0);
    } finally {
      db.off('query', countReads);
      await publisher.stop();
      await sequencer.stop();
    }
  });
});

describe("the robots' commands beside the client stream's backlog", () => {
  it('reads the commands due without walking the client events Moth has not taken', async () => {
    // A storm's client stream: thousands numbered and not yet on Moth (its channel is slow).
    const device = randomUUID();
    const backlog = Array.from({ length: 3000 }, () => clientEvent('DEVICE_CONNECTED', device));
    for (let i = 0; i < backlog.length; i += 500) await appendEvents(database.db, backlog.slice(i, i + 500));
    await appendEvents(database.db, [command(device, 'storm-1'), command(device, 'storm-2')]);
    while ((await numberPending(database.db, 2000)) > 0);
    await database.db.raw('ANALYZE outbox');

    // What the read took of the table: the backend's own counters, before and after, in one transaction.
    const tuplesRead = async (q: Knex.Transaction) => {
      const { rows } = await q.raw<{ rows: { n: string }[] }>(
        `SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) AS n
           FROM pg_stat_xact_user_tables WHERE relname = 'outbox'`,
      );
      return Number(rows[0]!.n);
    };
    const { commands, read } = await database.db.transaction(async (trx) => {
      const before = await tuplesRead(trx);
      const commands = await unpublishedCommands(trx, { perStream: 20, limit: 4000, resting: [] });
      return { commands, read: (await tuplesRead(trx)) - before };
    });
    expect(commands.filter((e) => e.stream === `device:${device}`).map((e) => e.seq)).toEqual([1, 2]);
    expect(commands.every((e) => e.stream !== 'client')).toBe(true);
    // The commands due (those of the earlier tests' robots among them), not the 3,000 client events.
    expect(read).toBeLessThan(100);
  });
});

describe('numbering under contention', () => {
  it('numbers every event once, each stream 1, 2, 3 ... without a gap, whoever numbers at once', async () => {
    const device = randomUUID();
    const failures: unknown[] = [];
    let writing = true;
    // Four processes' sequencers at once, as every gateway and worker runs one.
    const numberers = Array.from({ length: 4 }, async () => {
      while (writing) await numberPending(database.db, 50).catch((err: unknown) => failures.push(err));
    });
    // Writers committing side by side, so ids commit out of their order.
    await Promise.all(
      Array.from({ length: 6 }, async (_, w) => {
        for (let i = 0; i < 40; i++)
          await appendEvents(database.db, [
            clientEvent('DEVICE_CONNECTED', device),
            command(device, `w${w}-${i}`),
          ]);
      }),
    );
    writing = false;
    await Promise.all(numberers);
    while ((await numberPending(database.db, 2000)) > 0);
    expect(failures).toEqual([]);
    const seqs = async (stream: string) =>
      (await database.db('outbox').where({ stream, device_id: device }).orderBy('seq').pluck('seq')).map(
        Number,
      );
    const commands = await seqs(`device:${device}`);
    expect(commands).toEqual(Array.from({ length: 240 }, (_, i) => i + 1));
    // The client stream is shared with the other tests' events: this device's are 240 distinct numbers.
    const client = await seqs('client');
    expect(new Set(client).size).toBe(240);
    const all = (await database.db('outbox').where({ stream: 'client' }).orderBy('seq').pluck('seq')).map(
      Number,
    );
    expect(all).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
  });
});

describe("a pass over the robots' streams", () => {
  it('sends in the same pass a command numbered while it was sending', async () => {
    const db = database.db;
    const [first, second] = [randomUUID(), randomUUID()];
    await appendEvents(db, [command(first, 'first')]);
    while ((await numberPending(db, 2000)) > 0);
    const sent: string[] = [];
    const publisher = createOutboxPublisher({
      db,
      metrics: createMetrics('test'),
      logger,
      sign: async (e) => e,
      sendClient: async () => {},
      sendCommand: async (body) => {
        const e = body as PlatformEvent & { taskId: string };
        if (e.deviceId !== first && e.deviceId !== second) return;
        sent.push(e.taskId);
        // Another robot's command, committed and numbered while this one goes out.
        if (e.taskId === 'first') {
          await appendEvents(db, [command(second, 'second')]);
          while ((await numberPending(db, 2000)) > 0);
        }
      },
    });
    await publisher.publishOnce();
    expect(sent).toEqual(['first', 'second']);
    const unpublished = await db('outbox').whereIn('device_id', [first, second]).whereNull('published_at');
    expect(unpublished).toEqual([]);
  });
});
