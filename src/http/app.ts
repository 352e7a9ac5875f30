import type { Queue } from 'bullmq';
import Koa from 'koa';
import type { Registry } from 'prom-client';
import { randomUUID } from 'node:crypto';
import type { Config } from '../config';
import { createDestinationPolicy } from '../domain/destinations';
import { parseProxyAddresses } from '../domain/addresses';
import { forwardedOnlyFrom } from './forwarded';
import type { Db } from '../db/knex';
import type { Logger } from '../logger';
import type { RedisClient } from '../redis/connection';
import type { Liveness } from '../redis/liveness';
import type { SettingsService } from '../settings-service';
import type { SessionEffects } from '../domain/effects';
import type { Metrics } from '../metrics';
import { createApiOperations, type ApiOperations } from '../operations';
import { createHttpPorts, type HttpPorts } from '../operations/http-ports';
import { operatorTokens } from '../domain/operators';
import { createAuthenticator, createCredentialGuard, type Authenticator, type AuthSurface } from './auth';
import { errorHandler } from './errors';
import { fleetRoutes, isOperatorPath, operatorPageAuth, queueDashboard, sameOriginWrites } from './admin';
import { opsRoutes, type ReadinessChecks } from './ops';
import { openApiRoutes } from './openapi';
import { deviceRoutes } from './routes/devices';
import { groupRoutes } from './routes/groups';
import { settingsRoutes } from './routes/settings';
import { serverPolicy } from '../domain/settings';
import { taskRoutes } from './routes/tasks';
import { mediaRoutes } from './routes/media';
import { auditRoutes } from './routes/audit';
import { devicePageRoutes } from './routes/device-page';
import { eventRoutes } from './routes/events';
import { createLiveFeed, type LiveFeed } from '../streams/live-feed';
import { uptimeRoutes } from './routes/uptime';
import { webhookRoutes } from './routes/webhooks';
import type { Tgdm } from '../integrations/tgdm';
import type { Mantis } from '../integrations/mantis';

export interface AppDeps {
  readonly config: Config & { readonly ADMIN_TOKEN: string };
  readonly db: Db;
  readonly redis: RedisClient;
  readonly logger: Logger;
  readonly liveness: Liveness;
  readonly settings: SettingsService;
  readonly enqueueEffects: (d: readonly SessionEffects[]) => Promise<void>;
  readonly tgdm: Tgdm;
  readonly mantis: Mantis;
  /** Base URL of Moth as TGDM and Mantis reach it. */
  readonly mothUrl: string;
  /** Served at `/metrics`. */
  readonly metricsRegistry: Registry;
  /** What `/readyz` checks. */
  readonly readiness: ReadinessChecks;
  /** Queues shown on the dashboard at `/admin/queues`. */
  readonly dashboardQueues: readonly Queue[];
  /** Counts a refused credential (`rollcall_auth_failures_total`). */
  readonly countAuthFailure: (surface: AuthSurface) => void;
  /** Counts a live-stream watcher cut off for being too slow. */
  readonly countWatcherCut?: () => void;
  /** Where transitions are counted (a delete disconnects). */
  readonly metrics: Pick<Metrics, 'transitions' | 'disconnects'>;
}

/** Ten wrong secrets in a minute from one address block it for the rest of that minute. */
export const BAD_SECRET_LIMIT = { max: 10, windowSeconds: 60 } as const;
/** The same for wrong operator credentials (admin token, Basic password), counted apart. */
export const BAD_CREDENTIAL_LIMIT = { max: 10, windowSeconds: 60 } as const;
/** Requests a device may make with its own token (its routes, tasks, commands feed) per window. */
export const DEVICE_REQUEST_LIMIT = { max: 300, windowSeconds: 60 } as const;

/** Builds the Koa application. It never listens: `server.ts` does, tests use `app.callback()`. */
export function createApp(deps: AppDeps) {
  // Behind TRUST_PROXY_HOPS trusted proxies, the client is the entry the outermost one appended to
  // X-Forwarded-For (that many from the right): entries further left are whatever the client sent.
  const app = new Koa({ proxy: deps.config.TRUST_PROXY, maxIpsCount: deps.config.TRUST_PROXY_HOPS });
  const ports = createHttpPorts({
    db: deps.db,
    redis: deps.redis,
    queuePrefix: deps.config.QUEUE_PREFIX,
    logger: deps.logger,
  });
  const { operators, guard, auth, badSecrets } = credentials(deps, ports);

  app.on('error', (err: unknown, ctx?: Koa.Context) => {
    deps.logger.error({ err, requestId: ctx?.state.requestId as unknown }, 'request failed');
  });

  if (deps.config.TRUST_PROXY)
    app.use(forwardedOnlyFrom(parseProxyAddresses(deps.config.TRUST_PROXY_ADDRESSES)));
  app.use(requestLog(deps.logger));
  app.use(securityHeaders());
  app.use(errorHandler());
  // Operator pages: Basic auth (a browser can ask), on each route that serves one; any other spelling
  // of their paths asks for it too, before a router that matches case-insensitively sees it.
  const pageAuth = operatorPageAuth(operators, guard);
  app.use(async (ctx, next) => {
    if (!isOperatorPath(ctx.path)) await next();
    else
      await pageAuth(ctx, async () => {
        await sameOriginWrites(ctx, next);
      });
  });
  app.use(queueDashboard(deps.dashboardQueues, pageAuth));

  const ops = createApiOperations({
    ...deps,
    badSecrets,
    registrationSecret: () => deps.settings.registrationSecret(),
    settings: () => deps.settings.current(),
    webhookDestinations: createDestinationPolicy(deps.config.WEBHOOK_ALLOW_HOSTS),
    webhookMaxBacklog: deps.config.WEBHOOK_MAX_BACKLOG,
  });
  const live = liveFeed(deps, ops, ports);
  const routers = routersOf(deps, { auth, pageAuth, ops, live, sign: ports.sign });
  for (const router of routers) {
    app.use(router.routes());
    app.use(router.allowedMethods({ throw: true }));
  }
  return Object.assign(app, {
    /** The live streams' watchers: cut off (to resume elsewhere) before the server closes. */
    liveFeed: live,
    /** Every method and path the routers serve (the OpenAPI test checks each is described). */
    routeTable: routers.flatMap((r) =>
      r.stack.flatMap((layer) =>
        layer.methods.filter((m) => m !== 'HEAD').map((method) => ({ method, path: layer.path })),
      ),
    ),
  });
}

/** Every router of the API and the operator pages. */
function routersOf(
  deps: AppDeps,
  parts: {
    auth: Authenticator;
    pageAuth: Koa.Middleware;
    ops: ApiOperations;
    live: LiveFeed;
    sign: HttpPorts['sign'];
  },
) {
  const { auth, pageAuth, ops, live, sign } = parts;
  const serverPolicyNow = async () => serverPolicy(await deps.settings.current());
  return [
    deviceRoutes({
      config: deps.config,
      auth,
      ops,
      lastHeardAt: (id) => deps.liveness.lastHeardAt(id),
      serverPolicy: serverPolicyNow,
    }),
    groupRoutes({ auth, ops, serverPolicy: serverPolicyNow }),
    settingsRoutes({ auth, settings: deps.settings }),
    taskRoutes({ auth, ops }),
    mediaRoutes({ auth, ops }),
    fleetRoutes({
      queries: ops.queries,
      pageAuth,
      intervalSeconds: async () => (await deps.settings.current())['device.healthcheckIntervalSeconds'],
      lastHeardAt: (ids) => deps.liveness.lastHeardMany(ids),
      sharedBus: deps.config.MOTH_SHARED_BUS,
    }),
    eventRoutes({ auth, ops, sign, live, pageAuth }),
    uptimeRoutes({ auth, ops }),
    webhookRoutes({ auth, ops }),
    auditRoutes({ auth, ops }),
    devicePageRoutes({
      pageAuth,
      ops,
      lastHeardAt: (id) => deps.liveness.lastHeardAt(id),
      serverPolicy: serverPolicyNow,
      sharedBus: deps.config.MOTH_SHARED_BUS,
    }),
    opsRoutes(deps.metricsRegistry, deps.readiness),
    openApiRoutes('1'),
  ];
}

/** The operators' tokens, and what counts and refuses bad credentials, secrets and busy devices. */
function credentials(deps: AppDeps, ports: HttpPorts) {
  const guard = createCredentialGuard(
    ports.limiter('badCredential', BAD_CREDENTIAL_LIMIT),
    deps.countAuthFailure,
  );
  // The same fixed-window counter, counting every request a device makes rather than failures.
  const deviceRequests = ports.limiter('deviceRequests', DEVICE_REQUEST_LIMIT);
  const operators = operatorTokens(deps.config.ADMIN_TOKEN, deps.config.ADMIN_TOKENS);
  const auth = createAuthenticator(operators, ports.deviceIdByTokenHash, guard, (deviceId) =>
    deviceRequests.fail(deviceId),
  );
  return { operators, guard, auth, badSecrets: ports.limiter('badSecret', BAD_SECRET_LIMIT) };
}

/** Each request's id (answered in X-Request-Id) and one log line: method, path, status and time. */
function requestLog(logger: Logger): Koa.Middleware {
  return async (ctx, next) => {
    const started = performance.now();
    const requestId = randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    try {
      await next();
    } finally {
      // Method, path and status only: never headers or bodies, which carry tokens and secrets.
      const ms = Math.round(performance.now() - started);
      logger.info({ requestId, method: ctx.method, path: ctx.path, status: ctx.status, ms }, 'request');
    }
  };
}

/** The live streams (`GET /events/stream`, a robot's commands), read from the numbered streams. */
function liveFeed(deps: AppDeps, ops: ApiOperations, ports: HttpPorts) {
  return createLiveFeed({
    read: (stream, after, limit) => ops.queries.eventStream(stream, after, limit),
    sign: ports.sign,
    listen: ports.onNumbered,
    logger: deps.logger,
    onCut: () => deps.countWatcherCut?.(),
  });
}

/**
 * Headers on every response, errors included: no page of ours may be framed (the queue dashboard
 * acts on a click), no response sniffed into another type, no URL leaked as a referrer; over TLS
 * (ours, or a trusted proxy's), browsers keep to HTTPS.
 */
function securityHeaders(): Koa.Middleware {
  return async (ctx, next) => {
    ctx.set({
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
      // The API serves data, never a page: nothing in a response may load or run. The operator pages
      // set their own policy.
      'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
      'Referrer-Policy': 'no-referrer',
      'Cross-Origin-Opener-Policy': 'same-origin',
      ...(ctx.secure ? { 'Strict-Transport-Security': 'max-age=31536000' } : {}),
    });
    await next();
  };
}
