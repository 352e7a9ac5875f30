import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { ConfigError, type Config } from '../../src/config';
import type { ReadinessChecks } from '../../src/http/ops';
import { startOpsServer } from '../../src/http/ops-server';
import { addScrapeGauges, type Metrics } from '../../src/metrics';
import { countDevicesByStatus } from '../../src/db/fleet';
import { countDegradedLinks } from '../../src/db/links';
import { eventLag } from '../../src/db/outbox';
import { listWebhooks } from '../../src/db/webhooks';
import { circuitState } from '../../src/domain/webhooks';
import { createDb, type Db } from '../../src/db/knex';
import type { SessionEffects } from '../../src/domain/effects';
import { createRedis, type RedisClient } from '../../src/redis/connection';
import { redisKeys, type RedisKeys } from '../../src/redis/keys';
import { createBusLossStore, type BusLossStore } from '../../src/redis/bus-losses';
import { createLiveness, type Liveness } from '../../src/redis/liveness';
import { createRounds, type Rounds } from '../../src/redis/rounds';
import type { ConnectionOptions } from 'bullmq';
import { bullConnection, createQueues, type Queues } from '../../src/queues/connection';
import { createRoundScheduler, type RoundScheduler } from '../../src/queues/round-scheduler';
import { createSettingsService, type SettingsService } from '../../src/settings-service';
import { useSecretsKey } from '../../src/db/sealing';

export type BackedConfig = Config & { DATABASE_URL: string; REDIS_URL: string };

/** What every role connects to: Postgres, Redis (our keys), the queues, settings. */
export interface Services {
  readonly config: BackedConfig;
  readonly db: Db;
  readonly redis: RedisClient;
  readonly keys: RedisKeys;
  readonly liveness: Liveness;
  /** Round numbering and per-round facts. */
  readonly rounds: Rounds;
  readonly busLosses: BusLossStore;
  readonly queues: Queues;
  readonly scheduler: RoundScheduler;
  readonly settings: SettingsService;
  /**
   * A BullMQ connection for this process: options for a single Redis; on a cluster a client of its
   * own, closed with the services (BullMQ leaves the clients it is given open).
   */
  bullConnection(role: 'producer' | 'worker'): ConnectionOptions;
  /** Enqueues one job per effect of these sessions. */
  readonly enqueueEffects: (done: readonly SessionEffects[]) => Promise<void>;
  /** Readiness checks of the backing services. */
  readonly readiness: Record<string, () => Promise<unknown>>;
  /**
   * Refuses to start with another SHARDS than the deployment's: a process hashing devices to other
   * shards would look for their tokens and heard rounds in the wrong keys (a revoked token would live on).
   */
  checkShardCount(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The services of a role that is starting: created, then checked to agree with the others on the
 * shard count; closed again (and the error thrown) when they do not.
 */
export async function openServices(config: BackedConfig, name: string, poolMax?: number): Promise<Services> {
  const services = createServices(config, name, poolMax);
  try {
    await services.checkShardCount();
  } catch (err) {
    await services.close();
    throw err;
  }
  return services;
}

export function createServices(config: BackedConfig, name: string, poolMax = 10): Services {
  useSecretsKey(config.SECRETS_KEY);
  const db = createDb(config.DATABASE_URL, poolMax);
  const target = { url: config.REDIS_URL, cluster: config.REDIS_CLUSTER };
  const redis = createRedis(target, 'producer', `rollcall-${name}`);
  const clusterClients: RedisClient[] = [];
  const connectionFor = (role: 'producer' | 'worker'): ConnectionOptions => {
    if (!config.REDIS_CLUSTER) return bullConnection(config.REDIS_URL, role);
    const client = createRedis(target, role, `rollcall-${name}-bull`);
    client.on('error', () => {}); // as `redis` below
    clusterClients.push(client);
    return client;
  };
  redis.on('error', () => {}); // reconnects by itself; failures surface on the calls that need it
  const keys = redisKeys(config.QUEUE_PREFIX);
  const queues = createQueues(connectionFor('producer'), config.QUEUE_PREFIX);
  const liveness = createLiveness(redis, keys, config.SHARDS);
  const rounds = createRounds(redis, keys, config.SHARDS);
  const scheduler = createRoundScheduler(rounds, queues);
  const settings = createSettingsService(db, async (values) => {
    await scheduler.ensure(values['device.healthcheckIntervalSeconds']);
  });
  return {
    config,
    db,
    redis,
    keys,
    liveness,
    rounds,
    busLosses: createBusLossStore(redis, keys, config.SHARDS),
    queues,
    scheduler,
    settings,
    enqueueEffects: (done) =>
      queues.enqueueSessionEffects(done, {
        attempts: config.EFFECT_ATTEMPTS,
        backoffMs: config.EFFECT_BACKOFF_MS,
      }),
    readiness: {
      postgres: () => db.raw('SELECT 1'),
      redis: () => redis.ping(),
    },
    async checkShardCount() {
      const stored = await liveness.agreedShardCount();
      if (stored !== config.SHARDS)
        throw new ConfigError(
          `invalid environment:\n  SHARDS: ${config.SHARDS}, but this deployment's Redis state is kept in ${stored} shards (set SHARDS=${stored}, or rebuild the liveness state: see docs/scaling.md)`,
        );
    },
    bullConnection: connectionFor,
    async close() {
      await queues.close();
      for (const c of clusterClients) c.disconnect();
      redis.disconnect();
      await db.destroy();
    },
  };
}

/** A process-unique name for this replica, as it appears in Redis and logs. */
/** The gauges read at scrape time (devices, event lag, webhook circuits, queues), from this role's services. */
export function addServiceGauges(metrics: Metrics, services: Pick<Services, 'db' | 'queues'>): void {
  addScrapeGauges(metrics, {
    deviceCounts: () => countDevicesByStatus(services.db),
    degradedLinks: () => countDegradedLinks(services.db),
    queueCounts: () =>
      Promise.all(
        services.queues.all().map(async (q) => ({ queue: q.name, counts: await q.getJobCounts() })),
      ),
    eventLag: () => eventLag(services.db),
    webhookCircuits: async () => {
      const counts = { closed: 0, open: 0, 'half-open': 0 };
      const now = Date.now();
      for (const w of await listWebhooks(services.db)) counts[circuitState(w, now)]++;
      return counts;
    },
  });
}

export const replicaId = (role: string) =>
  `${role}-${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;

export interface OpsOptions {
  /** Share one registry between roles run in one process. */
  readonly metrics?: Metrics;
  /** Port of this role's /metrics, /healthz, /readyz; null: none (the all-in-one serves them on the API). */
  readonly opsPort?: number | null;
}

/** Starts the ops endpoints of a role without an API, unless told not to. */
export async function startRoleOps(
  config: Config,
  options: OpsOptions,
  metrics: Metrics,
  checks: ReadinessChecks,
) {
  if (options.opsPort === null) return undefined;
  return startOpsServer(config.HOST, options.opsPort ?? config.OPS_PORT, metrics.registry, checks);
}
