import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { post } from '../../src/integrations/http-post';

// The client every webhook delivery and every TGDM or Mantis call goes through: a real server that
// answers, hangs, redirects or talks too much, and counts the connections it was opened.

let server: Server;
let base: string;
let connections = 0;
beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.url === '/hang') return;
      if (req.url === '/moved') return void res.writeHead(302, { location: '/echo' }).end();
      if (req.url === '/big') return void res.writeHead(200).end('x'.repeat(3 * 1024 * 1024));
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ got: body, type: req.headers['content-type'] }));
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('post', () => {
  it('sends the body and headers and answers the status and body; kept-alive connections are reused', async () => {
    const before = connections;
    for (let i = 0; i < 5; i++) {
      const answer = await post(`${base}/echo`, `{"n":${i}}`, { 'content-type': 'application/json' }, 2000);
      expect(answer.status).toBe(201);
      expect(JSON.parse(answer.text)).toEqual({ got: `{"n":${i}}`, type: 'application/json' });
    }
    expect(connections - before).toBe(1);
  });

  it('gives up at its timeout on a server that never answers', async () => {
    const started = Date.now();
    await expect(post(`${base}/hang`, '{}', {}, 300)).rejects.toThrow('timed out after 300 ms');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('does not follow a redirect, and keeps at most 1 MiB of an answer', async () => {
    expect((await post(`${base}/moved`, '{}', {}, 2000)).status).toBe(302);
    const big = await post(`${base}/big`, '{}', {}, 5000);
    expect(big.status).toBe(200);
    expect(big.text.length).toBe(1024 * 1024);
  });

  it('refuses a URL that is not http or https', async () => {
    await expect(post('ftp://127.0.0.1/x', '{}', {}, 1000)).rejects.toThrow('unsupported protocol');
  });
});
