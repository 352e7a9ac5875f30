// A frame source for the ingestion benchmark: a WebSocket server that, to every client joining
// `/pang/ws/meb?...name=<device channel>`, pushes pre-encoded HEARTBEAT frames (binary, as robots send
// them) as fast as the socket drains, cycling through the tokens in TOKENS_FILE. Prints its port.
import { readFileSync } from 'node:fs';
import { WebSocketServer, type WebSocket } from 'ws';

const tokens = JSON.parse(readFileSync(process.env.TOKENS_FILE!, 'utf8')) as string[];
const frames = tokens.map((token) => Buffer.from(JSON.stringify({ type: 'HEARTBEAT', token })));
const channel = process.env.DEVICE_CHANNEL ?? 'device-management';

const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
wss.on('connection', (ws: WebSocket, req) => {
  ws.on('error', () => {});
  if (!new URL(req.url ?? '/', 'http://x').searchParams.get('name')?.startsWith(channel)) return;
  let i = 0;
  // A burst of frames leaves in one write, as a hub relaying a busy channel writes it: the source
  // should cost as little as it can, since it shares the machine with what it measures.
  const socket = (ws as unknown as { _socket: { cork(): void; uncork(): void } })._socket;
  const pump = () => {
    while (ws.readyState === ws.OPEN && ws.bufferedAmount < 1 << 22) {
      socket.cork();
      for (let k = 0; k < 256; k++) ws.send(frames[i++ % frames.length]!, { binary: true });
      socket.uncork();
    }
    // Full: poll again shortly, rather than spinning and taking CPU from the receiver being measured.
    if (ws.readyState === ws.OPEN) setTimeout(pump, 1);
  };
  pump();
});
wss.on('listening', () => process.stdout.write(`${(wss.address() as { port: number }).port}\n`));
