import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { MothHub } from '../../src/moth/hub';

const hubs: MothHub[] = [];
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.terminate();
  for (const h of hubs.splice(0)) await h.stop();
});

async function hub(options: ConstructorParameters<typeof MothHub>[0] = {}) {
  const h = new MothHub(options);
  const url = await h.start();
  hubs.push(h);
  return url;
}

interface Peer {
  ws: WebSocket;
  frames: { data: string; binary: boolean }[];
  closed: Promise<number>;
  pongs: number;
}

async function join(base: string, path: string): Promise<Peer> {
  const ws = new WebSocket(`${base}${path}`);
  sockets.push(ws);
  const peer: Peer = {
    ws,
    frames: [],
    pongs: 0,
    closed: new Promise((resolve) => ws.on('close', (code) => resolve(code))),
  };
  ws.on('message', (data, binary) => peer.frames.push({ data: (data as Buffer).toString(), binary }));
  ws.on('pong', () => peer.pongs++);
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return peer;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const meb = (name: string, track = 'base') =>
  `/pang/ws/meb?channel=instant&name=${name}&source=base&track=${track}`;

describe('embedded Moth hub', () => {
  it('meb: every frame reaches every other member, never its sender; bytes and frame kind preserved', async () => {
    const base = await hub();
    const [a, b, c] = [await join(base, meb('x')), await join(base, meb('x')), await join(base, meb('x'))];
    a.ws.send(Buffer.from('{"hello":1}'), { binary: true });
    await sleep(50);
    expect(b.frames).toEqual([{ data: '{"hello":1}', binary: true }]);
    expect(c.frames).toEqual([{ data: '{"hello":1}', binary: true }]);
    expect(a.frames).toEqual([]);
  });

  it('a text frame is the MIME description: relayed as text and replayed to members who join later', async () => {
    const base = await hub();
    const a = await join(base, meb('m'));
    const b = await join(base, meb('m'));
    a.ws.send('video/h264');
    await sleep(30);
    a.ws.send(Buffer.from('frame-1'), { binary: true });
    await sleep(30);
    expect(b.frames).toEqual([
      { data: 'video/h264', binary: false },
      { data: 'frame-1', binary: true },
    ]);
    const late = await join(base, meb('m'));
    await sleep(30);
    // No history: only the MIME replay.
    expect(late.frames).toEqual([{ data: 'video/h264', binary: false }]);
  });

  it('keeps channels, sources and tracks apart', async () => {
    const base = await hub();
    const a = await join(base, meb('c1', 't1'));
    const otherTrack = await join(base, meb('c1', 't2'));
    const otherChannel = await join(base, meb('c2', 't1'));
    const otherSource = await join(base, '/pang/ws/meb?channel=instant&name=c1&source=cam&track=t1');
    a.ws.send(Buffer.from('x'), { binary: true });
    await sleep(40);
    expect(otherTrack.frames).toEqual([]);
    expect(otherChannel.frames).toEqual([]);
    expect(otherSource.frames).toEqual([]);
  });

  it('pub/sub: frames go from the publisher to subscribers; one publisher per track unless style=multi', async () => {
    const base = await hub();
    const path = '/pang/ws/pub?channel=instant&name=dev1&track=video';
    const pub = await join(base, path);
    const sub = await join(base, '/pang/ws/sub?channel=instant&name=dev1&track=video');
    pub.ws.send(Buffer.from('img'), { binary: true });
    sub.ws.send(Buffer.from('ignored'), { binary: true });
    await sleep(40);
    expect(sub.frames).toEqual([{ data: 'img', binary: true }]);
    expect(pub.frames).toEqual([]);
    const second = await join(base, path);
    expect(await second.closed).toBe(1006);
    const multiA = await join(base, '/pang/ws/pub?channel=instant&name=dev2&track=video&style=multi');
    const multiB = await join(base, '/pang/ws/pub?channel=instant&name=dev2&track=video&style=multi');
    expect(multiA.ws.readyState).toBe(WebSocket.OPEN);
    expect(multiB.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('drops connections with a bad path, channel or key (1006, no reason)', async () => {
    const base = await hub({ key: 'k3y' });
    for (const path of ['/pang/ws/nope?channel=instant&name=a', '/pang/ws/meb?channel=bad', meb('a')]) {
      const p = await join(base, path);
      expect(await p.closed).toBe(1006);
    }
    const ok = await join(base, `${meb('a')}&key=k3y`);
    expect(ok.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('drops an idle connection after `timeout`; pings keep it, and are never answered', async () => {
    const base = await hub();
    const idle = await join(base, `${meb('i')}&timeout=1`);
    const pinging = await join(base, `${meb('i')}&timeout=1`);
    const timer = setInterval(() => pinging.ws.ping(), 300);
    const started = Date.now();
    expect(await idle.closed).toBe(1006);
    expect(Date.now() - started).toBeGreaterThanOrEqual(800);
    await sleep(800);
    clearInterval(timer);
    expect(pinging.ws.readyState).toBe(WebSocket.OPEN);
    expect(pinging.pongs).toBe(0);
  });

  it('loses frames sent back to back, delivers frames paced 5 ms apart', async () => {
    const base = await hub();
    const a = await join(base, meb('burst'));
    const b = await join(base, meb('burst'));
    for (let i = 0; i < 10; i++) a.ws.send(Buffer.from(`b${i}`), { binary: true });
    await sleep(60);
    expect(b.frames.length).toBeGreaterThanOrEqual(1);
    expect(b.frames.length).toBeLessThanOrEqual(2);
    b.frames.length = 0;
    for (let i = 0; i < 10; i++) {
      a.ws.send(Buffer.from(`p${i}`), { binary: true });
      await sleep(5);
    }
    await sleep(60);
    expect(b.frames.map((f) => f.data)).toEqual(Array.from({ length: 10 }, (_, i) => `p${i}`));
  });

  it('many senders answering at once are not lost (each sender has its own ring)', async () => {
    const base = await hub();
    const listener = await join(base, meb('fleet'));
    const senders = await Promise.all(Array.from({ length: 30 }, () => join(base, meb('fleet'))));
    senders.forEach((s, i) => s.ws.send(Buffer.from(`hb${i}`), { binary: true }));
    await sleep(100);
    expect(new Set(listener.frames.map((f) => f.data)).size).toBe(30);
  });
});
