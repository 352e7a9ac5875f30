import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSystem, waitFor, type TestSystem } from '../support/system';

// Webhooks aimed inward, on the defaults (no allow list): an address of this host, its networks or
// the metadata service is refused at creation, and a name that resolves to one is refused at each
// delivery, before any connection: the receiver there hears nothing, and the log says "refused"
// rather than what answered at that port.

describe('webhooks reach only where they should', () => {
  let s: TestSystem;
  let server: Server;
  let port = 0;
  let requests = 0;
  beforeAll(async () => {
    s = await startTestSystem({
      intervalSeconds: 1,
      env: { WEBHOOK_ALLOW_HOSTS: '', WEBHOOK_BACKOFF_MS: '100', WEBHOOK_FANOUT_MS: '100' },
    });
    server = createServer((_req, res) => {
      requests++;
      res.writeHead(200).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await s.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const subscribe = (url: string) =>
    request(s.callback)
      .post('/webhooks')
      .set(s.admin)
      .send({ url, events: ['DEVICE_REGISTERED'] });

  it('refuses an inward address at creation, however it is written', async () => {
    for (const url of [
      `http://127.0.0.1:${port}/recordings/x/stop`,
      'http://0x7f000001/',
      'http://[::ffff:127.0.0.1]/',
      'http://169.254.169.254/latest/meta-data',
      'http://10.0.0.1/hook',
    ]) {
      const res = await subscribe(url);
      expect(res.status, url).toBe(400);
      const { error } = res.body as { error: { code: string; message: string } };
      expect(error.code).toBe('WEBHOOK_URL_REFUSED');
      expect(error.message).toMatch(/^refused: .*WEBHOOK_ALLOW_HOSTS/);
    }
    expect((await request(s.callback).get('/webhooks').set(s.admin)).body).toMatchObject({ webhooks: [] });
  });

  it('refuses a name that resolves inward at delivery: nothing reaches it, the log says refused', async () => {
    const res = await subscribe(`http://localhost:${port}/hook`);
    expect(res.status).toBe(201);
    const id = (res.body as { id: string }).id;
    await s.register();
    const log = async () =>
      (
        (await request(s.callback).get(`/webhooks/${id}/deliveries`).set(s.admin)).body as {
          deliveries: { attempts: number; lastStatusCode: number | null; lastError: string | null }[];
        }
      ).deliveries;
    await waitFor(async () => ((await log())[0]?.attempts ?? 0) >= 2, 15_000, 'two refused attempts');
    const [delivery] = await log();
    expect(delivery!.lastError).toMatch(/^refused: (127\.0\.0\.1|::1) is a loopback address/);
    expect(delivery!.lastStatusCode).toBeNull();
    expect(requests).toBe(0);
  });
});
