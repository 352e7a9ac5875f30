// The ceiling of the ingestion benchmark: a bare `ws` client that receives and JSON-parses every frame
// from the same source, and reports how many it handled in DURATION_MS after a warm-up. With
// MODE=hash it decodes and hashes each token as the gateway does, and records nothing: how far the
// gateway's own work per frame is from the ceiling, before Redis. Argument: the source's URL; with
// TRACKS_FILE (a JSON list of track names) it holds one socket per track, as a gateway holds one per
// device bus, else one on the shared track.
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { tokenHash } from '../src/domain/credentials';
import { decodeInbound } from '../src/moth/codec';

const source = process.argv[2]!;
const warmup = Number(process.env.WARMUP_MS ?? 1000);
const duration = Number(process.env.DURATION_MS ?? 5000);
const tracks = process.env.TRACKS_FILE
  ? (JSON.parse(readFileSync(process.env.TRACKS_FILE, 'utf8')) as string[])
  : ['base'];
const hashing = process.env.MODE === 'hash';
let count = 0;
let parsedTypes = 0;

function onMessage(data: Buffer) {
  if (hashing) {
    const msg = decodeInbound(data);
    if (msg.kind === 'heartbeat' && tokenHash(msg.token).length === 64) parsedTypes++;
  } else {
    const msg = JSON.parse(data.toString('utf8')) as { type?: string };
    if (msg.type === 'HEARTBEAT') parsedTypes++;
  }
  count++;
}

function open(track: string): Promise<void> {
  const url = `${source}/pang/ws/meb?channel=instant&name=device-management&source=base&track=${track}`;
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on('message', onMessage);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
}

for (let i = 0; i < tracks.length; i += 250) await Promise.all(tracks.slice(i, i + 250).map(open));
setTimeout(() => {
  const start = count;
  const t0 = performance.now();
  setTimeout(() => {
    const rate = ((count - start) / (performance.now() - t0)) * 1000;
    process.stdout.write(`${JSON.stringify({ perSecond: Math.round(rate), parsed: parsedTypes })}\n`);
    process.exit(0);
  }, duration);
}, warmup);
