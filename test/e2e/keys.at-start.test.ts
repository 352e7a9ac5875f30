import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger';
import { startWeb } from '../../workers/roles/web';
import { webTestConfig } from '../support/app';
import { createTestDatabase } from '../support/database';

// A client caches the key set (max-age 60 s): were it empty at its first look, it could verify nothing
// for a minute. The key exists before the web role serves anything.

describe('the event key set at start', () => {
  it('is never empty, even before the first event of a new deployment', async () => {
    const database = await createTestDatabase();
    expect(await database.db('signing_keys').count({ n: '*' })).toEqual([{ n: '0' }]);
    const web = await startWeb(
      webTestConfig(database.url, { PORT: '0', HOST: '127.0.0.1' }),
      createLogger('silent'),
    );
    try {
      const res = await fetch(`http://127.0.0.1:${web.port}/.well-known/rollcall-keys`);
      const { keys } = (await res.json()) as { keys: { kid: string; kty: string }[] };
      expect(keys).toHaveLength(1);
      expect(keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519' });
    } finally {
      await web.stop();
      await database.drop();
    }
  });
});
