import { Writable } from 'node:stream';
import { inject } from 'vitest';
import { loadConfig } from '../../src/config';
import { hashSecret } from '../../src/domain/credentials';
import { storeSecretHash } from '../../src/db/settings';
import { createLogger } from '../../src/logger';
import { createServices } from '../../workers/roles/services';
import { buildWebApp } from '../../workers/roles/web';
import { createTestDatabase, uniquePrefix } from './database';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';
export const SECRET = 'test-registration-secret';

/** Everything the process logged, as text, so tests can assert what never appears in it. */
export class LogCapture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void) {
    this.text += chunk.toString();
    cb();
  }
}

/** Seals signing keys and webhook secrets in every test, as a deployment should. */
export const SECRETS_KEY = Buffer.alloc(32, 7).toString('base64');

/** The web role's configuration over a test database and its own Redis key prefix. */
export function webTestConfig(databaseUrl: string, env: Record<string, string> = {}) {
  return {
    ...loadConfig({
      NODE_ENV: 'test',
      QUEUE_PREFIX: uniquePrefix(),
      WEBHOOK_ALLOW_HOSTS: '127.0.0.1',
      SECRETS_KEY,
      ...env,
    }),
    DATABASE_URL: databaseUrl,
    REDIS_URL: inject('redisUrl'),
    ADMIN_TOKEN,
    // Nothing listens there: these tests do not reach Moth, TGDM or Mantis.
    MOTH_URL: 'ws://127.0.0.1:9',
    TGDM_URL: 'http://127.0.0.1:9',
    MANTIS_URL: 'http://127.0.0.1:9',
  };
}

/** The web role's app over a fresh database and its own Redis key prefix (no port is opened). */
export async function createTestApp(env: Record<string, string> = {}) {
  const database = await createTestDatabase();
  const config = webTestConfig(database.url, env);
  const logs = new LogCapture();
  const logger = createLogger('debug', 'test', logs);
  const services = createServices(config, 'web');
  await storeSecretHash(database.db, hashSecret(SECRET));
  const { app, metrics } = buildWebApp(config, services, logger);
  return {
    app,
    callback: app.callback(),
    config,
    db: database.db,
    redis: services.redis,
    keys: services.keys,
    liveness: services.liveness,
    metrics,
    logs,
    async close() {
      await services.close();
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
