// A frame source for the ingestion benchmark: a WebSocket server pushing pre-encoded HEARTBEAT frames
// (binary, as robots send them) as fast as each socket drains. A client on the shared bus
// (`track=base`) gets every device's heartbeat in turn; a client on a device's own bus (`track=<bus
// id>`) gets that device's only, unless PER_DEVICE=0 (its sessions then stay idle). The devices come
// from FLEET_FILE: [{token, busId}]. Pumping starts when START_AT such sockets are open, and again
// for the next readers once every one has left. Prints its port.
import { readFileSync } from 'node:fs';
import { WebSocketServer, type WebSocket } from 'ws';

const fleet = JSON.parse(readFileSync(process.env.FLEET_FILE!, 'utf8')) as { token: string; busId: string }[];
const frame = (token: string) => Buffer.from(JSON.stringify({ type: 'HEARTBEAT', token }));
const all = fleet.map((d) => frame(d.token));
const byBus = new Map(fleet.map((d) => [d.busId, [frame(d.token)]]));
const perDevice = process.env.PER_DEVICE !== '0';
/** Pumping starts once this many sockets that carry frames are open (all at once). */
const startAt = Number(process.env.START_AT ?? 1);
const waiting: (() => void)[] = [];
let started = false;
let live = 0;

const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
wss.on('connection', (ws: WebSocket, req) => {
  ws.on('error', () => {});
  const params = new URL(req.url ?? '/', 'http://x').searchParams;
  const track = params.get('track') ?? '';
  // Heartbeats come on the device-management channel only (the client-events one stays quiet).
  if (params.get('name') !== 'device-management') return;
  const frames = track === 'base' ? all : perDevice ? byBus.get(track) : undefined;
  if (!frames) return;
  live++;
  ws.on('close', () => {
    // Every reader gone: the next ones wait until START_AT of them are open again.
    if (--live === 0) started = false;
  });
  let i = 0;
  // A burst of frames leaves in one write, as a hub relaying a busy channel writes it: the source
  // should cost as little as it can, since it shares the machine with what it measures.
  const socket = (ws as unknown as { _socket: { cork(): void; uncork(): void } })._socket;
  const burst = frames.length === 1 ? 16 : 256;
  const limit = 1 << (frames.length === 1 ? 14 : 22);
  const pump = () => {
    // A few bursts, then the next socket's turn: a fast reader would otherwise keep this loop on its
    // socket for ever, and every other socket (and handshake) would starve.
    for (let b = 0; b < 8 && ws.readyState === ws.OPEN && ws.bufferedAmount < limit; b++) {
      socket.cork();
      for (let k = 0; k < burst; k++) ws.send(frames[i++ % frames.length]!, { binary: true });
      socket.uncork();
    }
    if (ws.readyState !== ws.OPEN) return;
    // Full: poll again shortly, rather than spinning and taking CPU from the receiver being measured.
    if (ws.bufferedAmount < limit) setImmediate(pump);
    else setTimeout(pump, 1);
  };
  if (started) return pump();
  waiting.push(pump);
  if (waiting.length < startAt) return;
  started = true;
  for (const p of waiting.splice(0)) p();
});
wss.on('listening', () => process.stdout.write(`${(wss.address() as { port: number }).port}\n`));
