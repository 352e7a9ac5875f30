import type { Server } from 'node:http';
import { createApp } from '../http/app';
import { closeServer, listen } from '../http/server';
import { createMantis } from '../integrations/mantis';
import { createTgdm } from '../integrations/tgdm';
import type { Logger } from '../logger';
import type { Role } from './role';
import { createServices, type BackedConfig } from './services';

export type WebConfig = BackedConfig & {
  ADMIN_TOKEN: string;
  TGDM_URL: string;
  MANTIS_URL: string;
  MOTH_URL: string;
};

/** The `web` role: the HTTP API. Stateless; run any number behind a load balancer. */
export async function startWeb(
  config: WebConfig,
  logger: Logger,
): Promise<Role & { port: number; server: Server }> {
  const services = createServices(config, 'web');
  const app = createApp({
    config,
    db: services.db,
    redis: services.redis,
    logger,
    liveness: services.liveness,
    settings: services.settings,
    enqueueEffects: services.enqueueEffects,
    tgdm: createTgdm(config.TGDM_URL, config.HTTP_TIMEOUT_MS),
    mantis: createMantis(config.MANTIS_URL, config.HTTP_TIMEOUT_MS),
    mothUrl: config.MOTH_PUBLIC_URL ?? config.MOTH_URL,
  });
  const { server, port } = await listen(app, config.HOST, config.PORT);
  logger.info({ port }, 'web listening');
  return {
    port,
    server,
    async stop() {
      await closeServer(server);
      await services.close();
    },
  };
}
