// The ceiling of the ingestion benchmark: a bare `ws` client that receives and JSON-parses every frame
// from the same source, and reports how many it handled in DURATION_MS after a warm-up. With
// MODE=hash it decodes and hashes each token as the gateway does, and records nothing: how far the
// gateway's own work per frame is from the ceiling, before Redis.
import { WebSocket } from 'ws';
import { tokenHash } from '../src/domain/credentials';
import { decodeInbound } from '../src/moth/codec';

const url = process.argv[2]!;
const warmup = Number(process.env.WARMUP_MS ?? 1000);
const duration = Number(process.env.DURATION_MS ?? 5000);
let count = 0;
let parsedTypes = 0;
const ws = new WebSocket(url, { perMessageDeflate: false });
const hashing = process.env.MODE === 'hash';
ws.on('message', (data: Buffer) => {
  if (hashing) {
    const msg = decodeInbound(data);
    if (msg.kind === 'heartbeat' && tokenHash(msg.token).length === 64) parsedTypes++;
  } else {
    const msg = JSON.parse(data.toString('utf8')) as { type?: string };
    if (msg.type === 'HEARTBEAT') parsedTypes++;
  }
  count++;
});
ws.on('open', () => {
  setTimeout(() => {
    const start = count;
    const t0 = performance.now();
    setTimeout(() => {
      const rate = ((count - start) / (performance.now() - t0)) * 1000;
      process.stdout.write(`${JSON.stringify({ perSecond: Math.round(rate), parsed: parsedTypes })}\n`);
      process.exit(0);
    }, duration);
  }, warmup);
});
