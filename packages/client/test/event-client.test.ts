import { randomBytes, randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startTestSystem, waitFor, type TestSystem } from '../../../test/support/system';
import { EventClient, type CursorStore, type RollcallEvent } from '../src/index.ts';

// The event client against the real service: Moth (the embedded hub, as lossy as Moth Lite), the SSE
// stream and the feed, over real HTTP.

/** The client channel's URL as a consumer joins it (with the channel's key). */
const clientChannel = (s: TestSystem) =>
  `${s.config.MOTH_URL}${s.config.channels.clientEvents}&key=${s.config.channels.clientKey ?? ''}`;

async function feedEvents(s: TestSystem): Promise<{ seq: number; eventId: string }[]> {
  const all: { seq: number; eventId: string }[] = [];
  for (;;) {
    const page = await request(s.callback)
      .get(`/events?after=${all.at(-1)?.seq ?? 0}&limit=1000`)
      .set(s.admin);
    const events = (page.body as { events: { seq: number; eventId: string }[] }).events;
    if (events.length === 0) return all;
    all.push(...events);
  }
}

function memoryCursor(): CursorStore & { value: number | undefined } {
  return {
    value: undefined,
    load() {
      return this.value;
    },
    save(seq) {
      this.value = seq;
    },
  };
}

describe('the event client on Moth, where frames are lost', () => {
  let s: TestSystem;
  beforeAll(async () => {
    // Sent back to back instead of paced: the hub loses what Moth Lite loses from a sender that fast.
    s = await startTestSystem({ env: { MOTH_FRAME_GAP_MS: '0' } });
  });
  afterAll(() => s.close());

  it('applies every event of a burst once and in order, filling from the feed what Moth lost', async () => {
    const api = await s.serve();
    const applied: RollcallEvent[] = [];
    const client = new EventClient({
      api,
      token: s.config.ADMIN_TOKEN,
      source: { moth: clientChannel(s) },
      pollMs: 1000,
      WebSocket: WebSocket as unknown as new (url: string) => globalThis.WebSocket,
      onEvent: (e) => void applied.push(e),
    });
    client.start();
    // Caught up on joining: the client is on the channel.
    await s.register({ name: 'first' });
    await waitFor(() => applied.length === 1, 5000, 'the client on the channel');
    await Promise.all(Array.from({ length: 150 }, (_, i) => s.register({ name: `burst-${i}` })));
    // Numbered moments after their commit: wait for the feed to have every one.
    await waitFor(async () => (await feedEvents(s)).length === 151, 10_000, 'the burst numbered');
    const feed = await feedEvents(s);
    await waitFor(() => client.last === feed.at(-1)!.seq, 10_000, 'the client caught up');
    await client.stop();

    expect(applied.map((e) => e.seq)).toEqual(feed.map((e) => e.seq));
    expect(applied.map((e) => e.eventId)).toEqual(feed.map((e) => e.eventId));
    // The burst was lossy on Moth (the system's own listener missed some), and the client filled it.
    expect(s.events.length).toBeLessThan(feed.length);
    expect(client.counts.filled).toBeGreaterThan(0);
  });

  it('refuses an event the service did not sign, and takes the real one with that number', async () => {
    const api = await s.serve();
    const before = (await feedEvents(s)).at(-1)!.seq;
    const applied: RollcallEvent[] = [];
    const client = new EventClient({
      api,
      token: s.config.ADMIN_TOKEN,
      source: { moth: clientChannel(s) },
      cursor: { load: () => before, save: () => {} },
      WebSocket: WebSocket as unknown as new (url: string) => globalThis.WebSocket,
      onEvent: (e) => void applied.push(e),
    });
    client.start();
    const keys = (await request(s.callback).get('/.well-known/rollcall-keys')).body as {
      keys: { kid: string }[];
    };
    const kid = keys.keys[0]!.kid;
    const forged = {
      type: 'DEVICE_DISCONNECTED',
      eventId: randomUUID(),
      occurredAt: new Date().toISOString(),
      deviceId: randomUUID(),
      reason: 'MISSED_HEARTBEATS',
      stream: 'client',
      seq: before + 1,
      kid,
      sig: randomBytes(64).toString('base64url'),
    };
    // A member of the channel holding its key (a rogue robot, a leaked key) sends the forgery.
    const rogue = new WebSocket(clientChannel(s));
    await new Promise((r) => rogue.once('open', r));
    await waitFor(
      () => (
        rogue.send(Buffer.from(JSON.stringify(forged))),
        client.counts.refused > 0 || applied.length > 0
      ),
      5000,
      'the client heard the forgery',
    );
    rogue.close();
    const real = await s.register({ name: 'after-the-forgery' });
    await waitFor(() => applied.some((e) => e.deviceId === real.id), 10_000, 'the real event applied');
    await client.stop();

    expect(client.counts.refused).toBeGreaterThan(0);
    expect(applied.map((e) => e.eventId)).not.toContain(forged.eventId);
    expect(applied[0]!.seq).toBe(before + 1);
    expect(applied[0]!.type).toBe('DEVICE_REGISTERED');
  });
});

describe('the event client on the SSE stream', () => {
  let s: TestSystem;
  beforeAll(async () => {
    s = await startTestSystem();
  });
  afterAll(() => s.close());

  it('resumes after a restart from its stored cursor: nothing again, nothing missed', async () => {
    const api = await s.serve();
    const cursor = memoryCursor();
    const first: RollcallEvent[] = [];
    const a = new EventClient({
      api,
      token: s.config.ADMIN_TOKEN,
      cursor,
      onEvent: (e) => void first.push(e),
    });
    a.start();
    for (let i = 0; i < 5; i++) await s.register({ name: `before-${i}` });
    // Events are numbered moments after their commit: wait for the feed to have them all first.
    const numbered = async (n: number) => {
      await waitFor(async () => (await feedEvents(s)).length === n, 10_000, `${n} events numbered`);
      return feedEvents(s);
    };
    const before = await numbered(5);
    await waitFor(() => a.last === before.at(-1)!.seq, 10_000, 'first client caught up');
    await a.stop();

    for (let i = 0; i < 5; i++) await s.register({ name: `while-away-${i}` });
    const second: RollcallEvent[] = [];
    const b = new EventClient({
      api,
      token: s.config.ADMIN_TOKEN,
      cursor,
      onEvent: (e) => void second.push(e),
    });
    b.start();
    await s.register({ name: 'after-restart' });
    const feed = await numbered(11);
    await waitFor(() => b.last === feed.at(-1)!.seq, 10_000, 'second client caught up');
    await b.stop();

    expect([...first, ...second].map((e) => e.eventId)).toEqual(feed.map((e) => e.eventId));
    expect(second.map((e) => e.type === 'DEVICE_REGISTERED' && e.name)).toEqual([
      ...Array.from({ length: 5 }, (_, i) => `while-away-${i}`),
      'after-restart',
    ]);
    expect(cursor.value).toBe(feed.at(-1)!.seq);
  });

  it('says why it cannot follow, and keeps trying', async () => {
    const api = await s.serve();
    const errors: Error[] = [];
    const c = new EventClient({
      api,
      token: 'not-the-admin-token-but-long-enough-0000',
      onEvent: () => {},
      onError: (e) => void errors.push(e),
    });
    c.start();
    await waitFor(() => errors.length >= 2, 10_000, 'two failed attempts');
    await c.stop();
    expect(errors[0]!.message).toContain('HTTP 401');
  });
});
