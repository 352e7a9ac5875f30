import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import type { Config } from '../config';
import type { Logger } from '../logger';
import { startEmbeddedPostgres, type RunningService } from './embedded-postgres';
import { startEmbeddedRedis } from './embedded-redis';
import { lockDataDir } from './processes';

export interface EmbeddedStack {
  /** The configuration with every missing URL and credential filled in. */
  readonly config: Config & { DATABASE_URL: string; REDIS_URL: string; ADMIN_TOKEN: string };
  /** What was started here, to stop in reverse order. */
  readonly services: readonly RunningService[];
  readonly startedHere: readonly string[];
}

/**
 * Starts what the configuration does not point at: Postgres in DATA_DIR/postgres, Redis in
 * DATA_DIR/redis, each on a free port, so two instances with different DATA_DIR run side by side.
 */
export async function startEmbeddedStack(config: Config, logger: Logger): Promise<EmbeddedStack> {
  const dataDir = resolve(config.DATA_DIR);
  const unlock = lockDataDir(dataDir);
  const services: RunningService[] = [{ url: dataDir, stop: async () => unlock() }];
  const startedHere: string[] = [];
  try {
    let databaseUrl = config.DATABASE_URL;
    if (!databaseUrl) {
      const pg = await startEmbeddedPostgres(resolve(dataDir, 'postgres'), 'rollcall', (line) =>
        logger.debug({ component: 'postgres' }, line.trim()),
      );
      services.push(pg);
      startedHere.push('postgres');
      databaseUrl = pg.url;
    }
    let redisUrl = config.REDIS_URL;
    if (!redisUrl) {
      const redis = await startEmbeddedRedis(resolve(dataDir, 'redis'), (line) =>
        logger.debug({ component: 'redis' }, line.trim()),
      );
      services.push(redis);
      startedHere.push('redis');
      redisUrl = redis.url;
    }
    return {
      config: {
        ...config,
        DATABASE_URL: databaseUrl,
        REDIS_URL: redisUrl,
        ADMIN_TOKEN: config.ADMIN_TOKEN ?? randomBytes(32).toString('base64url'),
      },
      services,
      startedHere,
    };
  } catch (err) {
    // The start-up error is the one to report; a service that also fails to stop adds nothing.
    for (const s of services.reverse()) await s.stop().catch(() => {});
    throw err;
  }
}
