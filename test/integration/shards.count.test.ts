import { describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config';
import { createServices } from '../../workers/roles/services';
import { uniquePrefix } from '../support/database';

describe('SHARDS', () => {
  it('every process of a deployment must use the same number: another one refuses to start', async () => {
    const prefix = uniquePrefix();
    const services = (shards: string) =>
      createServices(
        {
          ...loadConfig({ QUEUE_PREFIX: prefix, SHARDS: shards }),
          DATABASE_URL: inject('templateDbUrl'),
          REDIS_URL: inject('redisUrl'),
        },
        'test',
      );
    const first = services('64');
    const same = services('64');
    const other = services('8');
    try {
      await first.checkShardCount();
      await same.checkShardCount();
      const refused = await other.checkShardCount().catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(ConfigError);
      expect((refused as Error).message).toMatch(/SHARDS: 8, but .* 64 shards/);
    } finally {
      await Promise.all([first.close(), same.close(), other.close()]);
    }
  });
});
