import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSse } from '../support/sse';
import { startTestSystem, waitFor, type TestSystem } from '../support/system';

// The numbered streams, read live over HTTP: events are numbered at their commit (with Moth down as
// well), a watcher resumes exactly where it left off, and one web process serves hundreds of them.

describe('events live, numbered at commit', () => {
  let s: TestSystem;
  let server: Server;
  let base: string;
  beforeAll(async () => {
    s = await startTestSystem({ intervalSeconds: 1 });
    server = s.app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await s.app.liveFeed.close();
    await new Promise((r) => server.close(r));
    await s.close();
  });

  const registeredIn = (events: { data: Record<string, unknown> }[], id: string) =>
    events.some((e) => e.data.type === 'DEVICE_REGISTERED' && e.data.deviceId === id);

  it('numbers events within moments of their commit while Moth is down, and sends them once it is back', async () => {
    await s.stopHub();
    const committed = Date.now();
    const regs = await Promise.all(Array.from({ length: 5 }, () => s.register()));
    const feed = async () =>
      (await (await fetch(`${base}/events?after=0&limit=1000`, { headers: s.admin })).json()) as {
        events: { deviceId: string; seq: number; eventId: string }[];
      };
    await waitFor(
      async () => {
        const f = await feed();
        return regs.every((r) => f.events.some((e) => e.deviceId === r.id));
      },
      5000,
      'registrations in the feed',
    );
    // Every registration was in the feed within a second of its commit, none of them on Moth.
    expect(Date.now() - committed).toBeLessThan(1000 + 5 * 200);
    const ids = regs.map((r) => r.id);
    const unpublished = await s
      .db('outbox')
      .whereIn('device_id', ids)
      .whereNull('published_at')
      .count({ n: '*' });
    expect(unpublished).toEqual([{ n: '5' }]);
    const numbered = (await feed()).events.filter((e) => ids.includes(e.deviceId));
    await s.startHub();
    await waitFor(
      () => ids.every((id) => s.events.some((e) => e.type === 'DEVICE_REGISTERED' && e.deviceId === id)),
      15_000,
      'registrations on Moth once it is back',
    );
    // Sent with the numbers they were given at commit.
    for (const e of numbered)
      expect((s.events.find((m) => m.eventId === e.eventId) as unknown as { seq: number }).seq).toBe(e.seq);
  });

  it('streams new events to a watcher, which resumes exactly after its last id', async () => {
    const first = await readSse(`${base}/events/stream?after=${await lastSeq()}`, s.admin);
    expect(first.status).toBe(200);
    const a = await s.register();
    await waitFor(() => registeredIn(first.events, a.id), 5000, 'first event live');
    first.close();
    const lastSeen = first.events.at(-1)!.id;
    const missed = await Promise.all(Array.from({ length: 3 }, () => s.register()));
    const again = await readSse(`${base}/events/stream`, { ...s.admin, 'Last-Event-ID': String(lastSeen) });
    await waitFor(
      () => missed.every((m) => registeredIn(again.events, m.id)),
      5000,
      'missed events on resume',
    );
    again.close();
    // From the one after its last, none twice, none skipped.
    expect(again.events[0]!.id).toBe(lastSeen + 1);
    expect(again.events.map((e) => e.id)).toEqual(again.events.map((_, i) => lastSeen + 1 + i));
  });

  it('refuses a watcher without the operator token, and a robot reading another robot', async () => {
    expect((await fetch(`${base}/events/stream`)).status).toBe(401);
    const [a, b] = [await s.register(), await s.register()];
    const other = await fetch(`${base}/devices/${b.id}/commands/stream`, {
      headers: { Authorization: `Bearer ${a.token}` },
    });
    expect(other.status).toBe(403);
    const bad = await fetch(`${base}/events/stream`, { headers: { ...s.admin, 'Last-Event-ID': 'x' } });
    expect(bad.status).toBe(400);
  });

  it('a robot watches its own commands live', async () => {
    const robot = await s.register({ actions: ['PATROL'] });
    const watch = await readSse(`${base}/devices/${robot.id}/commands/stream`, {
      Authorization: `Bearer ${robot.token}`,
    });
    const res = await fetch(`${base}/devices/${robot.id}/tasks`, {
      method: 'POST',
      headers: { ...s.admin, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'PATROL' }),
    });
    expect(res.status).toBe(201);
    await waitFor(() => watch.events.length === 1, 5000, 'the command live');
    watch.close();
    expect(watch.events[0]!).toMatchObject({ id: 1, data: { type: 'TASK_REGISTERED', deviceId: robot.id } });
  });

  it('a robot holds at most 4 live streams at once; the fifth hears 429 until one closes', async () => {
    const robot = await s.register();
    const url = `${base}/devices/${robot.id}/commands/stream`;
    const auth = { Authorization: `Bearer ${robot.token}` };
    const open = [];
    for (let i = 0; i < 4; i++) open.push(await readSse(url, auth));
    expect(open.map((w) => w.status)).toEqual([200, 200, 200, 200]);
    const fifth = await fetch(url, { headers: auth });
    expect(fifth.status).toBe(429);
    expect(((await fifth.json()) as { error: { code: string } }).error.code).toBe('TOO_MANY_REQUESTS');
    expect(fifth.headers.get('retry-after')).toBe('5');
    // Another robot, and an operator reading this robot's commands, are not counted against it.
    const other = await s.register();
    const theirs = await readSse(`${base}/devices/${other.id}/commands/stream`, {
      Authorization: `Bearer ${other.token}`,
    });
    const operator = await readSse(url, s.admin);
    expect([theirs.status, operator.status]).toEqual([200, 200]);
    open.pop()!.close();
    await waitFor(async () => s.app.liveFeed.watchedBy(`device:${robot.id}`) === 3, 5000, 'one closed');
    const again = await readSse(url, auth);
    expect(again.status).toBe(200);
    for (const w of [...open, theirs, operator, again]) w.close();
  });

  it('serves 200 watchers at once, each within a second of the commit', async () => {
    const after = await lastSeq();
    const watchers = await Promise.all(
      Array.from({ length: 200 }, () => readSse(`${base}/events/stream?after=${after}`, s.admin)),
    );
    await new Promise((r) => setTimeout(r, 300));
    const committed = Date.now();
    const reg = await s.register();
    await waitFor(() => watchers.every((w) => registeredIn(w.events, reg.id)), 5000, 'every watcher');
    expect(Date.now() - committed).toBeLessThan(1000);
    for (const w of watchers) w.close();
    expect(s.app.liveFeed.watchers()).toBeLessThanOrEqual(200);
  });

  async function lastSeq(): Promise<number> {
    const page = (await (await fetch(`${base}/events?after=0&limit=1000`, { headers: s.admin })).json()) as {
      last: number;
    };
    return page.last;
  }
});
