// `npm start`: the whole system in one process tree on the embedded default.
import { randomBytes } from 'node:crypto';
import { applyRegistrationSecret } from '../src/bootstrap';
import { ConfigError, loadConfig } from '../src/config';
import { createDb, migrateLatest } from '../src/db/knex';
import { leaveShutdownToCaller } from '../src/dev/embedded-postgres';
import { MissingDependencyError } from '../src/dev/embedded-redis';
import { embeddedMothChannels, mothChannelKeys } from '../src/dev/moth-keys';
import { secretsKey } from '../src/dev/secrets-key';
import { startEmbeddedStack } from '../src/dev/stack';
import { createLogger } from '../src/logger';
import { onShutdownSignal, stopAll, type Role } from './roles/role';
import { startWeb } from './roles/web';
import { startGateway } from './roles/gateway';
import { startWorker } from './roles/worker';
import { ThreadedMothHub } from '../src/moth/hub-thread';
import { isRegisteredChannelId } from '../src/domain/channel-ids';
import { createMetrics } from '../src/metrics';
import {
  createMantisSimulator,
  createTgdmSimulator,
  type ContractSimulator,
} from '../src/integrations/simulator';

const isDataDirBusy = (err: unknown): err is Error =>
  err instanceof Error && err.message.startsWith('DATA_DIR ');

const roles: Role[] = [];
type Full = Awaited<ReturnType<typeof startEmbeddedStack>>['config'];

async function main() {
  // One key per Moth channel and, on the embedded hub, registered channels: generated on the first
  // start unless given (see mothChannelKeys and embeddedMothChannels).
  const dataDir = loadConfig().DATA_DIR;
  const config = loadConfig({
    ...process.env,
    ...mothChannelKeys(process.env, dataDir),
    ...embeddedMothChannels(process.env, dataDir),
    ...secretsKey(process.env, dataDir),
  });
  const logger = createLogger(config.LOG_LEVEL, 'rollcall');
  onShutdownSignal(async () => {
    logger.info('stopping');
    await stopAll(roles, (err) => logger.error({ err }, 'stop failed'));
  });
  // The roles drain first; the embedded Postgres, started first, is stopped last (stopAll's order).
  leaveShutdownToCaller();

  const stack = await startEmbeddedStack(config, logger);
  roles.push(...stack.services);
  const full = stack.config;

  const secret = await prepareDatabase(full);

  const mothUrl = full.MOTH_URL || (await startHub(full));

  const { TGDM_URL, MANTIS_URL, simulated } = await startSimulators(full);
  const everything = { ...full, MOTH_URL: mothUrl, TGDM_URL, MANTIS_URL };

  // One process, one registry: the API port serves /metrics, /healthz and /readyz for all roles.
  const metrics = createMetrics('all-in-one', true);
  const worker = await startWorker(everything, logger, { metrics, opsPort: null });
  roles.push(worker);
  const gateway = await startGateway(everything, logger, { metrics, opsPort: null });
  roles.push(gateway);
  const web = await startWeb(everything, logger, {
    metrics,
    readiness: {
      moth: async () => {
        if (!gateway.clientChannel.isOpen) throw new Error('client event session is down');
      },
    },
  });
  roles.push(web);

  const api = `http://localhost:${web.port}`;
  const given = { adminToken: Boolean(config.ADMIN_TOKEN) };
  process.stdout.write(
    banner(full, { api, mothUrl, TGDM_URL, MANTIS_URL, simulated, secret, stack, given }) + '\n',
  );
}

/** Migrated, and the registration secret applied (generated on the first start unless given). */
async function prepareDatabase(full: Full) {
  const db = createDb(full.DATABASE_URL, 2);
  try {
    await migrateLatest(db);
    return await applyRegistrationSecret(db, full.DEVICE_SECRET_KEY, () =>
      randomBytes(24).toString('base64url'),
    );
  } finally {
    await db.destroy();
  }
}

/** The embedded Moth-compatible hub, when no MOTH_URL is given; answers its URL. */
async function startHub(full: Full): Promise<string> {
  const hub = new ThreadedMothHub({
    port: full.MOTH_PORT,
    host: '0.0.0.0',
    ...(full.MOTH_KEY ? { key: full.MOTH_KEY } : {}),
    channels: registeredChannels(full),
  });
  await hub.start();
  roles.push(hub);
  return `ws://localhost:${hub.port}`;
}

/** TGDM and Mantis: their URLs, each a simulator started here when not given. */
async function startSimulators(full: Full) {
  const simulated: string[] = [];
  const simulator = async (url: string | undefined, name: string, create: () => ContractSimulator) => {
    if (url) return url;
    const sim = create();
    const started = await sim.start();
    roles.push(sim);
    simulated.push(name);
    return started;
  };
  const TGDM_URL = await simulator(full.TGDM_URL, 'TGDM', createTgdmSimulator);
  const MANTIS_URL = await simulator(full.MANTIS_URL, 'Mantis', createMantisSimulator);
  return { TGDM_URL, MANTIS_URL, simulated };
}

/** What `npm start` prints once everything is up: where each part is. */
function banner(
  full: Full,
  up: {
    api: string;
    mothUrl: string;
    TGDM_URL: string;
    MANTIS_URL: string;
    simulated: string[];
    secret: Awaited<ReturnType<typeof applyRegistrationSecret>>;
    stack: { startedHere: readonly string[] };
    given: { adminToken: boolean };
  },
): string {
  const { api, mothUrl, TGDM_URL, MANTIS_URL, simulated, secret, stack, given } = up;
  return [
    '',
    'rollcall is up',
    `  API                 ${api}    (OpenAPI: ${api}/openapi.json)`,
    `  fleet page          ${api}/admin    (HTTP Basic: any user, the admin token as password)`,
    `  queue dashboard     ${api}/admin/queues`,
    `  metrics, health     ${api}/metrics  ${api}/healthz  ${api}/readyz`,
    `  admin token         ${full.ADMIN_TOKEN}${given.adminToken ? '  (from ADMIN_TOKEN)' : '  (generated for this run; set ADMIN_TOKEN to fix it)'}`,
    secret.secret
      ? `  registration secret ${secret.secret}  (${secret.source === 'env' ? 'from DEVICE_SECRET_KEY' : 'generated on first start, stored hashed: note it now'})`
      : '  registration secret unchanged (stored hashed; set DEVICE_SECRET_KEY or PATCH /server-settings to replace it)',
    `  moth                ${mothUrl}${full.MOTH_URL ? '' : '  (embedded Moth-compatible hub)'}`,
    `  device buses        ${mothUrl}${full.channels.deviceBusForRobot('BUS').replace('BUS', '<bus id>')}  (each device's own: channels.deviceManagement of POST /devices)`,
    ...(full.MOTH_SHARED_BUS ? [`  shared bus (legacy) ${mothUrl}${full.channels.sharedDeviceBus}`] : []),
    `  client events       ${mothUrl}${full.channels.clientEvents}${full.channels.clientKey ? `&key=${full.channels.clientKey}` : ''}`,
    `  TGDM                ${TGDM_URL}${simulated.includes('TGDM') ? '  (simulator; POST /_sim/faults to inject latency or 5xx)' : ''}`,
    `  Mantis              ${MANTIS_URL}${simulated.includes('Mantis') ? '  (simulator)' : ''}`,
    `  fleet simulator     npm run fleet -- --api ${api} --moth ${mothUrl} --secret <registration secret> --devices 10`,
    `  postgres            ${stack.startedHere.includes('postgres') ? `embedded, data in ${full.DATA_DIR}/postgres` : 'DATABASE_URL'}`,
    `  redis               ${stack.startedHere.includes('redis') ? `embedded, data in ${full.DATA_DIR}/redis` : 'REDIS_URL'}`,
    '',
  ].join('\n');
}

/** The configured channels that are registered ones, each with its key, for the embedded hub. */
function registeredChannels(c: ReturnType<typeof loadConfig>): Record<string, string | undefined> {
  const channels = [
    [c.MOTH_DEVICE_CHANNEL, c.channels.deviceKey],
    [c.MOTH_CLIENT_CHANNEL, c.channels.clientKey],
  ] as const;
  return Object.fromEntries(channels.filter(([id]) => isRegisteredChannelId(id)));
}

main().catch(async (err: unknown) => {
  // Whatever started before the failure is stopped, children included.
  await stopAll(roles, () => {});
  if (err instanceof ConfigError || err instanceof MissingDependencyError || isDataDirBusy(err)) {
    process.stderr.write(`rollcall cannot start: ${err.message}\n`);
  } else {
    process.stderr.write(
      `rollcall failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
  }
  process.exit(1);
});
