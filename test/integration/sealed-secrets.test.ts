import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sealStoredSecrets } from '../../src/db/sealing';
import { ensureSigningKey } from '../../src/bootstrap';
import { currentSigningKey } from '../../src/db/signing-keys';
import { findWebhook } from '../../src/db/webhooks';
import { admin, createTestApp } from '../support/app';

let t: Awaited<ReturnType<typeof createTestApp>>;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t.close());

describe('signing keys and webhook secrets in Postgres', () => {
  it('are stored sealed, never as they are, and read back as they were', async () => {
    const res = await request(t.callback)
      .post('/webhooks')
      .set(admin)
      .send({ url: 'http://127.0.0.1:9/hook', events: ['DEVICE_CONNECTED'] });
    const { id, secret } = res.body as { id: string; secret: string };
    const row = (await t.db('webhooks').where({ id }).first()) as { secret: string };
    expect(row.secret).toMatch(/^sealed:v1:/);
    expect(row.secret).not.toContain(secret);
    expect((await findWebhook(t.db, id))!.secret).toBe(secret);

    await ensureSigningKey(t.db);
    const keys = await t.db('signing_keys').select<{ private_key: string }[]>('private_key');
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) expect(k.private_key).toMatch(/^sealed:v1:/);
    expect((await currentSigningKey(t.db)).privateKey.asymmetricKeyType).toBe('ed25519');
  });

  it('what was stored before a key was set is sealed at the next start, and reads the same', async () => {
    const id = randomUUID();
    await t.db('webhooks').insert({
      id,
      url: 'http://127.0.0.1:9/old',
      events: JSON.stringify(['DEVICE_CONNECTED']),
      expected_disconnects: false,
      secret: 'stored-in-the-clear',
    });
    expect(await sealStoredSecrets(t.db)).toBeGreaterThanOrEqual(1);
    const row = (await t.db('webhooks').where({ id }).first()) as { secret: string };
    expect(row.secret).toMatch(/^sealed:v1:/);
    expect((await findWebhook(t.db, id))!.secret).toBe('stored-in-the-clear');
    expect(await sealStoredSecrets(t.db)).toBe(0);
  });
});
