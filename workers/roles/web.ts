import type { Server } from 'node:http';
import { ensureSigningKey } from '../../src/bootstrap';
import { createApp } from '../../src/http/app';
import type { ReadinessChecks } from '../../src/http/ops';
import { closeServer, listen } from '../../src/http/server';
import { createMantis } from '../../src/integrations/mantis';
import { createTgdm } from '../../src/integrations/tgdm';
import type { Logger } from '../../src/logger';
import { createMetrics, type Metrics } from '../../src/metrics';
import type { Role } from './role';
import { addServiceGauges, openServices, type BackedConfig, type Services } from './services';
import { sealStoredSecrets } from '../../src/db/sealing';

export type WebConfig = BackedConfig & {
  ADMIN_TOKEN: string;
  TGDM_URL: string;
  MANTIS_URL: string;
  MOTH_URL: string;
};

export interface RoleOptions {
  /** Share one registry between roles run in one process. */
  readonly metrics?: Metrics;
  /** Extra readiness checks (the all-in-one adds the gateway's Moth session). */
  readonly readiness?: ReadinessChecks;
}

/** The Koa app of the web role over its services (tests build it the same way, without a port). */
export function buildWebApp(
  config: WebConfig,
  services: Services,
  logger: Logger,
  options: RoleOptions = {},
) {
  const metrics = options.metrics ?? createMetrics('web', true);
  addServiceGauges(metrics, services);
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
    metricsRegistry: metrics.registry,
    readiness: { ...services.readiness, ...options.readiness },
    dashboardQueues: services.queues.all(),
    countAuthFailure: (surface) => metrics.authFailures.inc({ surface }),
    countWatcherCut: () => metrics.liveWatchersCut.inc(),
    metrics,
  });
  return { app, metrics };
}

/** The `web` role: the HTTP API and operator pages. Stateless; run any number behind a load balancer. */
export async function startWeb(
  config: WebConfig,
  logger: Logger,
  options: RoleOptions = {},
): Promise<Role & { port: number; server: Server }> {
  const services = await openServices(config, 'web', 20);
  const { app } = buildWebApp(config, services, logger, options);
  await ensureSigningKey(services.db);
  // Secrets stored before SECRETS_KEY was set are sealed now; without one they stay as they are.
  const sealed = await sealStoredSecrets(services.db);
  if (sealed > 0) logger.info({ sealed }, 'secrets stored in the clear sealed with SECRETS_KEY');
  if (!config.SECRETS_KEY)
    logger.warn('SECRETS_KEY is not set: signing keys and webhook secrets are stored in the clear');
  const { server, port } = await listen(app, config.HOST, config.PORT, config);
  logger.info({ port, tls: Boolean(config.TLS_CERT_FILE) }, 'web listening');
  return {
    port,
    server,
    async stop() {
      // Live streams never end on their own: cut them off (their clients resume elsewhere) first.
      await app.liveFeed.close();
      await closeServer(server);
      await services.close();
    },
  };
}
