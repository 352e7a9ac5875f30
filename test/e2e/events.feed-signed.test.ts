import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { currentSigningKey, publishedKeys } from '../../src/db/signing-keys';
import { signEvent, verifyEvent, type PublicJwk } from '../../src/domain/signatures';
import { startTestSystem, waitFor, type PlatformEventSeen, type TestSystem } from '../support/system';

// Every event sent on Moth is numbered in its stream and signed; the feed serves the same events, so
// a client that lost frames on Moth (it has no acknowledgements) fetches what it missed and checks it.

type Signed = PlatformEventSeen & { stream: string; seq: number; kid: string; sig: string };
const keysOf = async (s: TestSystem) =>
  ((await request(s.callback).get('/.well-known/rollcall-keys')).body as { keys: PublicJwk[] }).keys;

async function wholeFeed(s: TestSystem, path: string, auth: Record<string, string>): Promise<Signed[]> {
  const out: Signed[] = [];
  for (let after = 0; ;) {
    const res = await request(s.callback).get(`${path}?after=${after}&limit=7`).set(auth);
    expect(res.status).toBe(200);
    const page = res.body as { events: Signed[]; last: number };
    out.push(...page.events);
    if (page.events.length === 0) return out;
    after = page.last;
  }
}

describe('events: numbered, signed, and a feed to fetch what Moth lost', () => {
  let s: TestSystem;
  beforeAll(async () => {
    s = await startTestSystem({ intervalSeconds: 1 });
  });
  afterAll(async () => s.close());

  const published = () =>
    waitFor(
      async () => Number((await s.db('outbox').whereNull('published_at').count({ n: '*' }))[0]!.n) === 0,
      10_000,
      'outbox published',
    );

  it('a client that lost frames finds every one in the feed, in order, each verifying', async () => {
    const regs = await Promise.all(Array.from({ length: 30 }, () => s.register()));
    await published();
    await new Promise((r) => setTimeout(r, 500));
    // The client's link loses a third of what Moth relayed (and Moth may have lost some already).
    const heard = (s.events as Signed[]).filter((_, i) => i % 3 !== 0);
    expect(heard.length).toBeGreaterThan(10);
    const keys = await keysOf(s);
    for (const e of heard) expect(verifyEvent(e, keys), e.type).toBe(true);

    const feed = await wholeFeed(s, '/events', s.admin);
    expect(feed.map((e) => e.seq)).toEqual(feed.map((_, i) => i + 1));
    for (const e of feed) expect(verifyEvent(e, keys)).toBe(true);
    // What it heard is what the feed has, number for number.
    const bySeq = new Map(feed.map((e) => [e.seq, e]));
    for (const e of heard) expect(bySeq.get(e.seq)?.eventId).toBe(e.eventId);
    // The numbers it did not hear are exactly what it fetches; with them it has every registration.
    const heardSeqs = new Set(heard.map((e) => e.seq));
    const fetched = feed.filter((e) => !heardSeqs.has(e.seq));
    expect(fetched.length).toBeGreaterThanOrEqual(feed.length - heard.length);
    const have = new Set(
      [...heard, ...fetched].filter((e) => e.type === 'DEVICE_REGISTERED').map((e) => e.deviceId),
    );
    for (const r of regs) expect(have.has(r.id)).toBe(true);
  });

  it('the check in docs/moth.md, run as written, takes real events and refuses altered ones', async () => {
    const readme = readFileSync(new URL('../../docs/moth.md', import.meta.url), 'utf8');
    const code = /Checking a frame in Node:\s*```js\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(code).toBeDefined();
    // As a client would use it: a module of its own.
    const file = join(mkdtempSync(join(tmpdir(), 'readme-')), 'verify.mjs');
    writeFileSync(
      file,
      `import crypto from 'node:crypto';\n${code!.replace(/^ {2}/gm, '')}\nexport { verified };\n`,
    );
    const { verified } = (await import(pathToFileURL(file).href)) as {
      verified: (event: unknown, jwks: unknown) => boolean;
    };
    await s.register();
    await published();
    const keys = await keysOf(s);
    const feed = await wholeFeed(s, '/events', s.admin);
    expect(feed.length).toBeGreaterThan(0);
    for (const e of feed) expect(verified(e, keys)).toBe(true);
    expect(verified({ ...feed[0]!, type: 'DEVICE_DISCONNECTED' }, keys)).toBe(false);
  });

  it('a forged or altered event fails verification, whoever sends it on the client channel', async () => {
    await s.register();
    await published();
    const keys = await keysOf(s);
    const [real] = (await wholeFeed(s, '/events', s.admin)).slice(-1);
    expect(verifyEvent(real!, keys)).toBe(true);
    expect(verifyEvent({ ...real!, type: 'DEVICE_DISCONNECTED' }, keys)).toBe(false);
    expect(verifyEvent({ ...real!, extra: 1 }, keys)).toBe(false);
    expect(verifyEvent({ ...real!, sig: undefined }, keys)).toBe(false);
    expect(verifyEvent({ ...real!, kid: 'nobody' }, keys)).toBe(false);
    // A rogue member of the client channel, with a key of its own.
    const rogueKey = { kid: keys[0]!.kid, privateKey: generateKeyPairSync('ed25519').privateKey };
    const forged = signEvent(
      {
        type: 'DEVICE_DISCONNECTED',
        eventId: real!.eventId,
        occurredAt: real!.occurredAt,
        deviceId: real!.deviceId,
        seq: 999,
      },
      rogueKey,
    );
    const rogue = new WebSocket(`${s.config.MOTH_URL}${s.config.channels.clientEvents}`);
    await new Promise((resolve, reject) => rogue.once('open', resolve).once('error', reject));
    rogue.send(Buffer.from(JSON.stringify(forged)), { binary: true });
    await waitFor(() => s.events.some((e) => (e as Signed).seq === 999), 5000, 'the forged frame relayed');
    rogue.close();
    const seen = s.events.find((e) => (e as Signed).seq === 999)!;
    expect(verifyEvent(seen, keys)).toBe(false);
  });

  it("a robot's commands are signed on its bus and in its own feed, which no other robot reads", async () => {
    const d = await s.device();
    const other = await s.register();
    await s.waitStatus(d.id, 'CONNECTED');
    const task = await request(s.callback)
      .post(`/devices/${d.id}/tasks`)
      .set(s.admin)
      .send({ action: 'LINE_TRACKING', payload: {} });
    expect(task.status).toBe(201);
    await waitFor(() => d.device.received.some((m) => m.type === 'TASK_REGISTERED'), 5000, 'the command');
    const keys = await keysOf(s);
    const onBus = d.device.received.find((m) => m.type === 'TASK_REGISTERED')!;
    expect(onBus).toMatchObject({ stream: `device:${d.id}`, seq: 1, deviceId: d.id });
    expect(verifyEvent(onBus, keys)).toBe(true);
    // The stream is signed: a command does not pass for another stream's, nor a client event for a command.
    expect(verifyEvent({ ...onBus, stream: 'client' }, keys)).toBe(false);
    const own = await wholeFeed(s, `/devices/${d.id}/commands`, { Authorization: `Bearer ${d.reg.token}` });
    expect(own.map((e) => [e.type, e.stream, e.seq, e.eventId])).toEqual([
      ['TASK_REGISTERED', `device:${d.id}`, 1, onBus.eventId],
    ]);
    const clientEvents = await wholeFeed(s, '/events', s.admin);
    expect(new Set(clientEvents.map((e) => e.stream))).toEqual(new Set(['client']));
    const foreign = await request(s.callback)
      .get(`/devices/${d.id}/commands`)
      .set({ Authorization: `Bearer ${other.token}` });
    expect(foreign.status).toBe(403);
  });

  it('an event sent again after Moth dropped the session keeps its number', async () => {
    const reg = await s.register();
    await published();
    const first = (await wholeFeed(s, '/events', s.admin)).find(
      (e) => e.type === 'DEVICE_REGISTERED' && e.deviceId === reg.id,
    )!;
    const heardBefore = s.events.length;
    await s.restartHub(300);
    await waitFor(
      () => s.events.slice(heardBefore).some((e) => e.eventId === first.eventId),
      15_000,
      'the event sent again',
    );
    const again = s.events.slice(heardBefore).find((e) => e.eventId === first.eventId) as Signed;
    expect(again.seq).toBe(first.seq);
    expect(verifyEvent(again, await keysOf(s))).toBe(true);
    const feed = await wholeFeed(s, '/events', s.admin);
    expect(feed.filter((e) => e.eventId === first.eventId).map((e) => e.seq)).toEqual([first.seq]);
  });

  it('a rotated key signs from then on; what the old one signed still verifies', async () => {
    const before = await currentSigningKey(s.db);
    expect((await request(s.callback).post('/signing-keys/rotate')).status).toBe(401);
    const res = await request(s.callback).post('/signing-keys/rotate').set(s.admin);
    expect(res.status).toBe(200);
    const { kid } = res.body as { kid: string };
    expect(kid).not.toBe(before.kid);
    expect((await currentSigningKey(s.db)).kid).toBe(kid);
    const published = (await publishedKeys(s.db)).map((k) => k.kid);
    expect(published).toEqual(expect.arrayContaining([before.kid, kid]));
    const old = signEvent({ type: 'X', eventId: 'e' }, before);
    expect(verifyEvent(old, await publishedKeys(s.db))).toBe(true);
  });

  it('a revoked key is unpublished at once and never signs again; the key in use is replaced first', async () => {
    // Both signers (the gateway's on Moth, the web role's for the feed) hold the key in use.
    const earlier = await s.device();
    await waitFor(() => s.eventsOf(earlier.id, 'DEVICE_REGISTERED').length > 0, 5000, 'an event on Moth');
    await wholeFeed(s, '/events', s.admin);
    const inUse = await currentSigningKey(s.db);
    const older = (await publishedKeys(s.db)).map((k) => k.kid).filter((k) => k !== inUse.kid);
    const signed = signEvent({ type: 'X', eventId: 'r' }, inUse);
    expect(verifyEvent(signed, await keysOf(s))).toBe(true);

    expect((await request(s.callback).post(`/signing-keys/${inUse.kid}/revoke`)).status).toBe(401);
    const res = await request(s.callback).post(`/signing-keys/${inUse.kid}/revoke`).set(s.admin);
    expect(res.status).toBe(200);
    const published = (res.body as { keys: PublicJwk[] }).keys.map((k) => k.kid);
    expect(published).not.toContain(inUse.kid);
    expect(published).toEqual(expect.arrayContaining(older));
    expect(verifyEvent(signed, await keysOf(s))).toBe(false);
    const next = await currentSigningKey(s.db);
    expect(next.kid).not.toBe(inUse.kid);
    expect(published).toContain(next.kid);
    // Every process signs with the new key within a second: the gateway on Moth, the web role's feed.
    await new Promise((r) => setTimeout(r, 1100));
    const d = await s.device();
    await waitFor(() => s.eventsOf(d.id, 'DEVICE_REGISTERED').length > 0, 5000, 'the event on Moth');
    const onMoth = s.eventsOf(d.id, 'DEVICE_REGISTERED')[0] as Signed;
    const inFeed = (await wholeFeed(s, '/events', s.admin)).find((e) => e.eventId === onMoth.eventId)!;
    for (const e of [onMoth, inFeed]) {
      expect(e.kid).toBe(next.kid);
      expect(verifyEvent(e, await keysOf(s))).toBe(true);
    }

    const missing = await request(s.callback).post('/signing-keys/no-such-key/revoke').set(s.admin);
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ error: { code: 'SIGNING_KEY_NOT_FOUND' } });
    expect((await request(s.callback).post('/signing-keys/a%20b/revoke').set(s.admin)).status).toBe(400);
  });
});
