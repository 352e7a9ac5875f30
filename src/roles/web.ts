import type { Server } from 'node:http';
import type { Config } from '../config';
import { createDb } from '../db/knex';
import { createApp } from '../http/app';
import { closeServer, listen } from '../http/server';
import type { Logger } from '../logger';
import { createRedis, redisKeys } from '../redis/connection';
import { createLiveness } from '../redis/liveness';
import { createSettingsService } from '../settings-service';
import type { Role } from './role';

export type WebConfig = Config & { DATABASE_URL: string; REDIS_URL: string; ADMIN_TOKEN: string };

/** The `web` role: the HTTP API. Stateless; run any number behind a load balancer. */
export async function startWeb(config: WebConfig, logger: Logger): Promise<Role & { port: number; server: Server }> {
  const db = createDb(config.DATABASE_URL);
  const redis = createRedis(config.REDIS_URL, 'producer', 'rollcall-web');
  const keys = redisKeys(config.QUEUE_PREFIX);
  const liveness = createLiveness(redis, keys);
  const settings = createSettingsService(db, async () => {
    // Every process reads settings from Postgres when it needs them; this only wakes the ones
    // that hold derived state (the round scheduler).
    await redis.publish(keys.settingsChanged, String(Date.now()));
  });
  const app = createApp({ config, db, redis, logger, liveness, settings, enqueueEffects: async () => {} });
  const { server, port } = await listen(app, config.HOST, config.PORT);
  logger.info({ port }, 'web listening');
  return {
    port,
    server,
    async stop() {
      await closeServer(server);
      redis.disconnect();
      await db.destroy();
    },
  };
}
