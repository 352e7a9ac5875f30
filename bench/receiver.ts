// A healthy webhook receiver for the bench, in a process of its own (the bench's own process is busy
// reading the SSE watchers, and would delay its answers): answers 200 at once and prints, every
// 200 ms, a JSON line of the events that arrived since the last (event id -> when). Prints its URL.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

let arrived: Record<string, number> = {};
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString()));
  req.on('end', () => {
    const id = /"eventId":"([^"]+)"/.exec(body)?.[1];
    if (id) arrived[id] ??= Date.now();
    res.writeHead(200).end();
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hook\n`);
});
setInterval(() => {
  if (Object.keys(arrived).length === 0) return;
  process.stdout.write(`${JSON.stringify({ arrived })}\n`);
  arrived = {};
}, 200);
process.once('SIGTERM', () => server.close(() => process.exit(0)));
