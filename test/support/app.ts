import { inject } from 'vitest';
import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config';
import { hashSecret } from '../../src/domain/credentials';
import { storeSecretHash } from '../../src/db/settings';
import { createApp } from '../../src/http/app';
import { createLogger } from '../../src/logger';
import { createRedis, redisKeys, type Redis } from '../../src/redis/connection';
import { createLiveness } from '../../src/redis/liveness';
import { createSettingsService } from '../../src/settings-service';
import { createMantis } from '../../src/integrations/mantis';
import { createTgdm } from '../../src/integrations/tgdm';
import { createTestDatabase, uniquePrefix } from './database';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';
export const SECRET = 'test-registration-secret';

/** Everything the process logged, as text, so tests can assert what never appears in it. */
export class LogCapture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void) {
    this.text += chunk.toString();
    cb();
  }
}

/** The HTTP app over a fresh database and its own Redis key prefix (no port is opened). */
export async function createTestApp(env: Record<string, string> = {}) {
  const database = await createTestDatabase();
  const prefix = uniquePrefix();
  const config = {
    ...loadConfig({ NODE_ENV: 'test', QUEUE_PREFIX: prefix, ...env }),
    DATABASE_URL: database.url,
    REDIS_URL: inject('redisUrl'),
    ADMIN_TOKEN,
  };
  const redis: Redis = createRedis(config.REDIS_URL, 'producer');
  const logs = new LogCapture();
  const logger = createLogger('debug', 'test', logs);
  const keys = redisKeys(prefix);
  const liveness = createLiveness(redis, keys);
  const settingsChanges: unknown[] = [];
  const settings = createSettingsService(database.db, async (v) => {
    settingsChanges.push(v);
  });
  await storeSecretHash(database.db, hashSecret(SECRET));
  const app = createApp({
    config,
    db: database.db,
    redis,
    logger,
    liveness,
    settings,
    enqueueEffects: async () => {},
    // Nothing listens there: these tests do not reach TGDM or Mantis.
    tgdm: createTgdm('http://127.0.0.1:9', 500),
    mantis: createMantis('http://127.0.0.1:9', 500),
    mothUrl: 'ws://127.0.0.1:9',
  });
  return {
    app,
    callback: app.callback(),
    config,
    db: database.db,
    redis,
    keys,
    liveness,
    logs,
    settingsChanges,
    async close() {
      redis.disconnect();
      await database.drop();
    },
  };
}

export const admin = { Authorization: `Bearer ${ADMIN_TOKEN}` };

export function registration(overrides: Record<string, unknown> = {}) {
  return {
    name: `robot-${Math.random().toString(36).slice(2, 10)}`,
    secretKey: SECRET,
    tracks: [
      { name: 'front', type: 'VIDEO' },
      { name: 'lidar', type: 'LIDAR' },
    ],
    actions: ['LINE_TRACKING'],
    ...overrides,
  };
}
