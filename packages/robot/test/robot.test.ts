import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { SECRET } from '../../../test/support/app';
import { lastSession, startTestSystem, waitFor, type TestSystem } from '../../../test/support/system';
import { startWsProxy, type WsProxy } from '../../../test/support/ws-proxy';
import { fileCursor, loadOrRegister, Robot, type Command, type Refusal } from '../src/index.ts';

// The robot SDK against the real service: registration over HTTP, its bus on the embedded hub (through
// a proxy that can cut it), its commands signed, numbered and fetched from its feed.

describe('a robot built on the SDK', () => {
  let s: TestSystem;
  let api: string;
  let moth: WsProxy;
  let dir: string;
  const robots: Robot[] = [];
  beforeAll(async () => {
    s = await startTestSystem({ intervalSeconds: 1, maxMisses: 2 });
    api = await s.serve();
    moth = await startWsProxy(s.config.MOTH_URL);
    dir = mkdtempSync(join(tmpdir(), 'robot-sdk-'));
  });
  afterEach(async () => {
    for (const r of robots.splice(0)) await r.stop();
  });
  afterAll(async () => {
    await moth.close();
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function robot(name: string, options: Partial<ConstructorParameters<typeof Robot>[0]> = {}) {
    const credentials = await loadOrRegister(join(dir, `${name}.json`), {
      api,
      secret: SECRET,
      name,
      actions: ['PATROL'],
    });
    const r = new Robot({ api, moth: moth.url, credentials, ...options });
    robots.push(r);
    return r;
  }
  const task = async (deviceId: string) =>
    (
      (await request(s.callback).post(`/devices/${deviceId}/tasks`).set(s.admin).send({ action: 'PATROL' }))
        .body as {
        id: string;
      }
    ).id;

  it('registers once, keeps its credentials to itself, and is CONNECTED', async () => {
    const r = await robot('amr-keeps');
    const again = await loadOrRegister(join(dir, 'amr-keeps.json'), {
      api,
      secret: 'never-asked',
      name: 'x',
    });
    expect(again.id).toBe(r.id);
    // Where Moth is comes with the registration (this test's robots join through a proxy instead).
    expect(again.moth).toBe(s.config.MOTH_URL);
    expect(statSync(join(dir, 'amr-keeps.json')).mode & 0o777).toBe(0o600);
    r.start();
    await s.waitStatus(r.id, 'CONNECTED', 10_000);
  });

  it('takes each command once and in order: what Moth lost comes from its feed, a replay and a restart bring nothing again', async () => {
    const cursor = fileCursor(join(dir, 'amr-commands.seq'));
    const r = await robot('amr-commands', { commandsCursor: cursor });
    const taken: Command[] = [];
    r.on('command', (c) => void taken.push(c));
    r.start();
    await s.waitStatus(r.id, 'CONNECTED', 10_000);
    const first = await task(r.id);
    await waitFor(() => taken.length === 1, 5000, 'the first command');

    // Off its bus while three more are sent: Moth drops them, nobody is there to hear them.
    const bus = (path: string) =>
      path.includes(new URL(r.credentials.busPath, 'ws://x').searchParams.get('track')!);
    moth.hold(bus, 1500);
    const more = [await task(r.id), await task(r.id), await task(r.id)];
    await waitFor(() => taken.length === 4, 10_000, 'the commands sent while it was away');
    expect(taken.map((c) => c.task_id)).toEqual([first, ...more]);
    expect(taken.map((c) => c.seq)).toEqual([1, 2, 3, 4]);
    expect(r.commandCounts.filled).toBeGreaterThanOrEqual(3);

    // A member of its bus replays a recorded command: valid signature, old number.
    const replayer = new WebSocket(new URL(r.credentials.busPath, s.config.MOTH_URL));
    await new Promise((res) => replayer.once('open', res));
    const feed = await request(s.callback).get(`/devices/${r.id}/commands`).set(s.admin);
    const replayed = (feed.body as { events: unknown[] }).events[0];
    for (let i = 0; i < 5; i++) replayer.send(Buffer.from(JSON.stringify(replayed)));
    await waitFor(() => r.commandCounts.duplicates > 0, 5000, 'the replay heard');
    replayer.close();
    await r.stop();

    const restarted = await robot('amr-commands', { commandsCursor: cursor });
    const afterRestart: Command[] = [];
    restarted.on('command', (c) => void afterRestart.push(c));
    restarted.start();
    const fifth = await task(r.id);
    await waitFor(() => afterRestart.length === 1, 10_000, 'the command after the restart');
    expect(taken).toHaveLength(4);
    expect(afterRestart.map((c) => [c.task_id, c.seq])).toEqual([[fifth, 5]]);
  });

  it('answers with proofs in protocol v2, and says goodbye: disconnected at once, PLANNED', async () => {
    const r = await robot('amr-v2', { protocol: 'v2' });
    r.start();
    await s.waitStatus(r.id, 'CONNECTED', 10_000);
    await waitFor(
      async () =>
        (
          (await request(s.callback).get(`/devices/${r.id}`).set(s.admin)).body as {
            heartbeatProtocol: string;
          }
        ).heartbeatProtocol === 'v2',
      5000,
      'its proofs accepted',
    );
    await r.goodbye();
    await s.waitStatus(r.id, 'DISCONNECTED', 3000);
    expect((await lastSession(s, r.id))?.endReason).toBe('PLANNED');
  });

  it('reports on its task', async () => {
    const r = await robot('amr-reports');
    r.start();
    const id = await task(r.id);
    expect(await r.report(id, 'start')).toMatchObject({ id, status: 'IN_PROGRESS' });
    expect(await r.report(id, 'complete')).toMatchObject({ id, status: 'COMPLETED' });
    await expect(r.report(id, 'reject')).rejects.toMatchObject({ status: 409 });
  });

  it('is told why when its token was rotated, on its bus, signed', async () => {
    const r = await robot('amr-rotated');
    const refusals: Refusal[] = [];
    r.on('refused', (x) => void refusals.push(x));
    r.start();
    await s.waitStatus(r.id, 'CONNECTED', 10_000);
    await request(s.callback).post(`/devices/${r.id}/token`).set(s.admin).expect(200);
    await waitFor(() => refusals.length > 0, 5000, 'the refusal');
    expect(refusals[0]!.code).toBe('UNKNOWN_TOKEN');
  });

  it('acts on nothing the service did not sign: a forged command or refusal on its bus is dropped', async () => {
    const r = await robot('amr-forged');
    const taken: Command[] = [];
    const refusals: Refusal[] = [];
    r.on('command', (c) => void taken.push(c));
    r.on('refused', (x) => void refusals.push(x));
    r.start();
    await s.waitStatus(r.id, 'CONNECTED', 10_000);
    const keys = (await request(s.callback).get('/.well-known/rollcall-keys')).body as {
      keys: { kid: string }[];
    };
    const signed = { kid: keys.keys[0]!.kid, sig: 'A'.repeat(86), occurredAt: new Date().toISOString() };
    const forgeries = [
      { type: 'TASK_ABORTED', deviceId: r.id, stream: `device:${r.id}`, seq: 1, task_id: 'x', ...signed },
      { type: 'REFUSED', code: 'UNKNOWN_TOKEN', deviceId: r.id, ...signed },
    ];
    // A member of its bus (it holds the device channel's key) sends them.
    const rogue = new WebSocket(new URL(r.credentials.busPath, s.config.MOTH_URL));
    await new Promise((res) => rogue.once('open', res));
    await waitFor(
      () => {
        for (const f of forgeries) rogue.send(Buffer.from(JSON.stringify(f)));
        return r.commandCounts.refused > 0;
      },
      5000,
      'the forged command heard and refused',
    );
    await new Promise((res) => setTimeout(res, 300));
    rogue.close();
    expect(taken).toEqual([]);
    expect(refusals).toEqual([]);
  });

  it('comes back on its bus by itself after Moth restarts', async () => {
    const r = await robot('amr-returns');
    let opened = 0;
    r.on('open', () => opened++);
    r.start();
    await s.waitStatus(r.id, 'CONNECTED', 10_000);
    await s.restartHub(3000);
    await waitFor(() => opened === 2, 20_000, 'back on its bus');
    const answered = r.heartbeatsSent;
    await waitFor(() => r.heartbeatsSent > answered + 2, 10_000, 'answering again');
    await s.waitStatus(r.id, 'CONNECTED', 10_000);
  });
});
