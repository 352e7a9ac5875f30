import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { inject } from 'vitest';
import { loadConfig } from '../../src/config';
import { hashSecret } from '../../src/domain/credentials';
import { storeSecretHash, writeSettings } from '../../src/db/settings';
import type { SettingValues } from '../../src/domain/settings';
import type { SimulatedDevice } from '../../src/dev/simulated-device';
import { waitFor } from '../../src/dev/processes';
import { buildWebApp } from '../../workers/roles/web';
import { createLogger, type Logger } from '../../src/logger';
import type { HubOptions } from '../../src/moth/hub';
import { startGateway } from '../../workers/roles/gateway';
import { createServices } from '../../workers/roles/services';
import { startWorker } from '../../workers/roles/worker';
import { ADMIN_TOKEN, LogCapture, SECRET, SECRETS_KEY } from './app';
import { createTestDatabase, uniquePrefix } from './database';
import { listenForEvents, type PlatformEventSeen } from './event-listener';
import { createFleet } from './fleet';
import { startMothStack } from './moth-stack';
import { startWsProxy } from './ws-proxy';

export interface SystemOptions {
  readonly intervalSeconds?: number;
  readonly maxMisses?: number;
  readonly gateways?: number;
  readonly workers?: number;
  readonly redisUrl?: string;
  readonly hub?: HubOptions;
  readonly automaticRecording?: boolean;
  readonly env?: Record<string, string>;
  readonly settings?: Partial<SettingValues>;
  /** The gateways reach Moth through a proxy that can cut one session (`mothProxy.cut`); robots do not. */
  readonly mothProxy?: boolean;
}

export type { PlatformEventSeen };

/**
 * The whole service in this process over real parts: a fresh Postgres database, Redis under its own
 * prefix, the Moth hub and simulators on free ports, gateways and workers as separate roles, the
 * HTTP app, a client of the event channel and a fleet of robots.
 */
export async function startTestSystem(opts: SystemOptions = {}) {
  const database = await createTestDatabase();
  const stack = await startMothStack(opts.hub);
  const config = {
    ...loadConfig({
      NODE_ENV: 'test',
      QUEUE_PREFIX: uniquePrefix(),
      WEBHOOK_ALLOW_HOSTS: '127.0.0.1',
      SECRETS_KEY,
      ...opts.env,
      // In the environment too: what is derived from it (the Moth URL given to robots) names them.
      ...stack.urls,
    }),
    DATABASE_URL: database.url,
    REDIS_URL: opts.redisUrl ?? inject('redisUrl'),
    ...stack.urls,
    ADMIN_TOKEN,
  };
  const logs = new LogCapture();
  const logger = createLogger('info', 'test', logs);
  await writeSettings(database.db, {
    'device.healthcheckIntervalSeconds': opts.intervalSeconds ?? 1,
    'device.healthcheckMaxConsecutiveMisses': opts.maxMisses ?? 2,
    'recording.automatic': opts.automaticRecording ?? false,
    ...opts.settings,
  });
  await storeSecretHash(database.db, hashSecret(SECRET));

  const webServices = createServices(config, 'web');
  const { app } = buildWebApp(config, webServices, logger);
  const callback = app.callback();
  const mothProxy = opts.mothProxy ? await startWsProxy(config.MOTH_URL) : undefined;
  const roles = await startRoles(mothProxy ? { ...config, MOTH_URL: mothProxy.url } : config, logger, opts);
  const listener = await listenForEvents(config);
  const fleet = createFleet(callback, config.MOTH_URL);
  let server: Server | undefined;

  const system = {
    config,
    db: database.db,
    redis: webServices.redis,
    keys: webServices.keys,
    app,
    callback,
    logs,
    events: listener.events,
    eventsOf: listener.eventsOf,
    listenerJoinedAt: listener.connectedAt,
    /** The event listener leaves the client channel, or joins it again. */
    stopListening: () => listener.close(),
    listenAgain: () => listener.connect(),
    ...roles,
    tgdm: stack.tgdm,
    mantis: stack.mantis,
    mothProxy,
    get hub() {
      return stack.hub;
    },
    admin: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    register: fleet.register,
    device: fleet.device,
    stopHub: () => stack.stopHub(),
    /** Starts the hub again on the same port, and the event listener with it (after `first`, if given). */
    async startHub(first?: () => Promise<unknown>) {
      await stack.startHub();
      await first?.();
      await waitFor(
        () =>
          listener.connect().then(
            () => true,
            () => false,
          ),
        10_000,
        'event listener back',
      );
    },
    /** Stops the hub and starts it again on the same port after `downMs`. */
    async restartHub(downMs: number) {
      await system.stopHub();
      await new Promise((r) => setTimeout(r, downMs));
      await system.startHub();
    },
    /** The HTTP app on a port of its own (once): its base URL, for clients that speak real HTTP. */
    async serve(): Promise<string> {
      server ??= app.listen(0, '127.0.0.1');
      if (!server.listening) await new Promise((r) => server!.once('listening', r));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    },
    async status(id: string): Promise<string> {
      const row = await database.db('devices').where({ id }).first<{ status: string } | undefined>('status');
      return row?.status ?? 'MISSING';
    },
    async waitStatus(id: string, status: string, timeoutMs = 15_000) {
      await waitFor(async () => (await system.status(id)) === status, timeoutMs, `device ${id} ${status}`);
    },
    async close() {
      server?.closeAllConnections();
      await new Promise((r) => (server ? server.close(r) : r(undefined)));
      await fleet.close();
      listener.close();
      await app.liveFeed.close();
      await roles.stopAll();
      await mothProxy?.close();
      await stack.stop();
      await webServices.close();
      await database.drop();
    },
  };
  return system;
}

/** Gateways and workers, each a role of its own in this process; more can start, any can stop. */
async function startRoles(
  config: Parameters<typeof startGateway>[0] & Parameters<typeof startWorker>[0],
  logger: Logger,
  opts: SystemOptions,
) {
  type Gateway = Awaited<ReturnType<typeof startGateway>>;
  type WorkerRole = Awaited<ReturnType<typeof startWorker>>;
  const gateways: Gateway[] = [];
  const workers: WorkerRole[] = [];
  const startGatewayRole = async () => {
    const g = await startGateway(config, logger, { opsPort: 0 });
    gateways.push(g);
    return g;
  };
  const startWorkerRole = async () => {
    const w = await startWorker(config, logger, { opsPort: 0 });
    workers.push(w);
    return w;
  };
  for (let i = 0; i < (opts.workers ?? 1); i++) await startWorkerRole();
  for (let i = 0; i < (opts.gateways ?? 1); i++) await startGatewayRole();
  const remove = (list: unknown[], role: unknown) =>
    list.includes(role) && list.splice(list.indexOf(role), 1);
  return {
    gateways,
    workers,
    startGateway: startGatewayRole,
    startWorker: startWorkerRole,
    async stopRole(role: Gateway | WorkerRole) {
      await role.stop();
      remove(gateways, role);
      remove(workers, role);
    },
    async stopAll() {
      for (const g of [...gateways]) await g.stop();
      for (const w of [...workers]) await w.stop();
    },
  };
}
export type TestSystem = Awaited<ReturnType<typeof startTestSystem>>;

/** The HEALTHCHECK rounds a device has received, in order. */
export function roundsReceived(
  device: SimulatedDevice,
): { round: number; issuedAt: string; intervalSeconds: number }[] {
  return device.received
    .filter((m) => m.type === 'HEALTHCHECK')
    .map((m) => m as unknown as { round: number; issuedAt: string; intervalSeconds: number });
}

/** A metric of the first gateway: the series with these labels (the only one when none are given), or 0. */
export async function gatewayMetric(s: TestSystem, name: string, labels: Record<string, string> = {}) {
  const m = await s.gateways[0]!.metrics.registry.getSingleMetric(name)!.get();
  return m.values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))?.value ?? 0;
}

/** The device's latest connection session, as the API shows it. */
export async function lastSession(s: TestSystem, id: string) {
  const res = await request(s.callback).get(`/devices/${id}/sessions`).set(s.admin);
  return (res.body as { sessions: { endReason: string | null; endedAt: string | null }[] }).sessions[0]!;
}

/** A task created for the device and started by it: IN_PROGRESS. Resolves with its id. */
export async function startedTask(s: TestSystem, d: { id: string; reg: { token: string } }): Promise<string> {
  const task = await request(s.callback)
    .post(`/devices/${d.id}/tasks`)
    .set(s.admin)
    .send({ action: 'LINE_TRACKING', payload: {} });
  const id = (task.body as { id: string }).id;
  await request(s.callback)
    .post(`/tasks/${id}/start`)
    .set({ Authorization: `Bearer ${d.reg.token}` })
    .expect(200);
  return id;
}

export { waitFor };
