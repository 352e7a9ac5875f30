import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { closeServer, listen } from '../../src/http/server';
import { createTestApp } from '../support/app';

let t: Awaited<ReturnType<typeof createTestApp>>;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

describe('TLS', () => {
  it('serves HTTPS when a certificate and key are given', async () => {
    const dir = mkdtempSync(join(inject('runDir'), 'tls-'));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
      ],
      {
        stdio: 'ignore',
      },
    );
    const { server, port } = await listen(t.app, '127.0.0.1', 0, { TLS_CERT_FILE: cert, TLS_KEY_FILE: key });
    try {
      let hsts: unknown;
      const body = await new Promise<string>((resolve, reject) => {
        const req = httpsRequest(
          { host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false },
          (res) => {
            hsts = res.headers['strict-transport-security'];
            let text = '';
            res.on('data', (d: Buffer) => (text += d.toString()));
            res.on('end', () => resolve(text));
          },
        );
        req.on('error', reject);
        req.end();
      });
      expect(JSON.parse(body)).toEqual({ status: 'ok' });
      // Over TLS, browsers are told to keep to HTTPS.
      expect(hsts).toBe('max-age=31536000');
      // Plain HTTP to the TLS port does not get an answer from the API.
      const plain = await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.status,
        () => 'refused',
      );
      expect(plain).not.toBe(200);
    } finally {
      await closeServer(server);
    }
  });
});
