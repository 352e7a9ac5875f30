import request from 'supertest';
import { inject } from 'vitest';
import { WebSocket } from 'ws';
import { loadConfig } from '../../src/config';
import { hashSecret } from '../../src/domain/credentials';
import { storeSecretHash, writeSettings } from '../../src/db/settings';
import type { SettingValues } from '../../src/domain/settings';
import { SimulatedDevice, type SimulatedDeviceOptions } from '../../src/dev/simulated-device';
import { waitFor } from '../../src/dev/processes';
import { buildWebApp } from '../../workers/roles/web';
import { createLogger } from '../../src/logger';
import type { HubOptions } from '../../src/moth/hub';
import { ThreadedMothHub } from '../../src/moth/hub-thread';
import { createMantisSimulator, createTgdmSimulator } from '../../src/integrations/simulator';
import { startGateway } from '../../workers/roles/gateway';
import { createServices } from '../../workers/roles/services';
import { startWorker } from '../../workers/roles/worker';
import { ADMIN_TOKEN, LogCapture, registration, SECRET } from './app';
import { createTestDatabase, uniquePrefix } from './database';

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
}

export type PlatformEventSeen = {
  type: string;
  eventId: string;
  deviceId: string | null;
  [k: string]: unknown;
};

/**
 * The whole service in this process over real parts: a fresh Postgres database, Redis under its own
 * prefix, the Moth hub on a free port, gateways and workers as separate roles, the HTTP app.
 */
export async function startTestSystem(opts: SystemOptions = {}) {
  const database = await createTestDatabase();
  // The hub loses frames exactly where Moth Lite does (one 20-slot ring per track, readers polling
  // every 1 ms by the frames' arrival times): no leniency for the tests. On a thread of its own, so
  // this busy process's stalls do not bunch paced frames into bursts Moth would never see.
  const hubOptions: HubOptions = { ...opts.hub };
  let hub = new ThreadedMothHub(hubOptions);
  const mothUrl = await hub.start();
  let hubPort = hub.port;
  const tgdm = createTgdmSimulator();
  const mantis = createMantisSimulator();
  const [tgdmUrl, mantisUrl] = [await tgdm.start(), await mantis.start()];
  const config = {
    ...loadConfig({ NODE_ENV: 'test', QUEUE_PREFIX: uniquePrefix(), ...opts.env }),
    DATABASE_URL: database.url,
    REDIS_URL: opts.redisUrl ?? inject('redisUrl'),
    MOTH_URL: mothUrl,
    TGDM_URL: tgdmUrl,
    MANTIS_URL: mantisUrl,
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

  // A client on the event channel, as the operator UI would be.
  const events: PlatformEventSeen[] = [];
  let eventSocket: WebSocket | undefined;
  const listen = async () => {
    const key = config.channels.clientKey;
    const ws = new WebSocket(`${config.MOTH_URL}${config.channels.clientEvents}${key ? `&key=${key}` : ''}`);
    ws.on('message', (d) => events.push(JSON.parse((d as Buffer).toString('utf8')) as PlatformEventSeen));
    ws.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    // Moth drops a member that neither sends nor pings for its idle timeout (30 s), receiving or not.
    const ping = setInterval(() => ws.readyState === WebSocket.OPEN && ws.ping(), 10_000);
    ws.once('close', () => clearInterval(ping));
    eventSocket = ws;
  };
  await listen();

  const devices: SimulatedDevice[] = [];
  const admin = { Authorization: `Bearer ${ADMIN_TOKEN}` };

  const system = {
    config,
    db: database.db,
    redis: webServices.redis,
    keys: webServices.keys,
    app,
    callback,
    logs,
    events,
    gateways,
    workers,
    tgdm,
    mantis,
    get hub() {
      return hub;
    },
    admin,
    startGateway: startGatewayRole,
    startWorker: startWorkerRole,
    async stopRole(role: Gateway | WorkerRole) {
      await role.stop();
      const list = gateways as unknown[];
      if (list.includes(role)) list.splice(list.indexOf(role), 1);
      const wl = workers as unknown[];
      if (wl.includes(role)) wl.splice(wl.indexOf(role), 1);
    },
    /** Stops the hub: every connection drops, as when Moth crashes. */
    async stopHub() {
      hubPort = hub.port || hubPort;
      await hub.stop();
    },
    /** Starts the hub again on the same port, and the event listener with it. */
    async startHub() {
      hub = new ThreadedMothHub({ ...hubOptions, port: hubPort });
      await hub.start();
      await waitFor(
        async () => {
          try {
            await listen();
            return true;
          } catch {
            return false;
          }
        },
        10_000,
        'event listener back on the hub',
      );
    },
    /** Stops the hub and starts it again on the same port after `downMs`. */
    async restartHub(downMs: number) {
      await system.stopHub();
      await new Promise((r) => setTimeout(r, downMs));
      await system.startHub();
    },
    async register(overrides: Record<string, unknown> = {}) {
      const res = await request(callback).post('/devices').send(registration(overrides));
      if (res.status !== 201)
        throw new Error(`registration failed: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body as { id: string; name: string; token: string; channels: { deviceManagement: string } };
    },
    /** Registers a device and connects it to the device channel, answering every HEALTHCHECK. */
    async device(options: Partial<SimulatedDeviceOptions> = {}, overrides: Record<string, unknown> = {}) {
      const reg = await system.register(overrides);
      const device = new SimulatedDevice({
        mothUrl: config.MOTH_URL,
        channelPath: reg.channels.deviceManagement,
        token: reg.token,
        deviceId: reg.id,
        replyDelayMs: () => 20 + Math.random() * 150,
        ...options,
      });
      await device.connect();
      devices.push(device);
      return { reg, device, id: reg.id };
    },
    async status(id: string): Promise<string> {
      const row = await database.db('devices').where({ id }).first<{ status: string } | undefined>('status');
      return row?.status ?? 'MISSING';
    },
    async waitStatus(id: string, status: string, timeoutMs = 15_000) {
      await waitFor(async () => (await system.status(id)) === status, timeoutMs, `device ${id} ${status}`);
    },
    eventsOf(deviceId: string, type?: string) {
      return events.filter((e) => e.deviceId === deviceId && (type === undefined || e.type === type));
    },
    async close() {
      for (const d of devices) await d.close();
      eventSocket?.terminate();
      for (const g of [...gateways]) await g.stop();
      for (const w of [...workers]) await w.stop();
      await hub.stop();
      await tgdm.stop();
      await mantis.stop();
      await webServices.close();
      await database.drop();
    },
  };
  return system;
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
