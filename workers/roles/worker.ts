import { createAbortTask } from '../../jobs/abort-task';
import { createDispatchEffects } from '../../jobs/dispatch-effects';
import { createEvaluateRoundJob } from '../../jobs/evaluate-round';
import { createStartRecording } from '../../jobs/start-recording';
import { createStopAnalysisStreams } from '../../jobs/stop-analysis-streams';
import { createStopRecording } from '../../jobs/stop-recording';
import { createSweepEffects } from '../../jobs/sweep-effects';
import { createDeliverWebhookJob } from '../../jobs/deliver-webhook';
import { createFanOutWebhooks } from '../../jobs/fan-out-webhooks';
import { webhooksWithWork } from '../../src/db/webhooks';
import { selectStalePending } from '../../src/db/effects';
import { createDb, type Db } from '../../src/db/knex';
import { createDestinationPolicy } from '../../src/domain/destinations';
import { effectProcessor, type EffectDefinition } from '../../src/effects/run-effect';
import { abortSessionTask } from '../../src/operations/abort-session-task';
import { createConfirmRound } from '../../src/operations/confirm-round';
import { createConnectDevices } from '../../src/operations/connect-device';
import { createDeliverWebhook } from '../../src/operations/deliver-webhook';
import { createEvaluateRound } from '../../src/operations/evaluate-round';
import { createStartRecording as startRecordingOperation } from '../../src/operations/start-recording';
import { createStopAnalysisStreams as stopStreamsOperation } from '../../src/operations/stop-analysis-streams';
import { createStopRecording as stopRecordingOperation } from '../../src/operations/stop-recording';
import { createMantis } from '../../src/integrations/mantis';
import { createTgdm } from '../../src/integrations/tgdm';
import type { Logger } from '../../src/logger';
import { createMetrics, type Metrics } from '../../src/metrics';
import { startConsumers } from '../../src/queues/consumers';
import { QUEUE_TABLE, QUEUES } from '../../src/queues/table';
import { createShardLeases } from '../../src/redis/shard-leases';
import { createSequencer } from '../../src/streams/sequencer';
import type { Role } from './role';
import {
  addServiceGauges,
  openServices,
  startRoleOps,
  type BackedConfig,
  type OpsOptions,
  type Services,
} from './services';

/** Rounds evaluated at once (the table's evaluate-round consumers). */
const EVALUATIONS_AT_ONCE = QUEUE_TABLE.evaluateRound.concurrency;
/** Disconnect transactions one evaluation runs side by side. */
const PARALLEL_BATCHES = 2;
/**
 * Connections of the webhooks' own pools (a pump holds one only while it reads or records): one for
 * receivers that answer, one for the others (new, failing or dead).
 */
const WEBHOOK_CONNECTIONS = { answering: 8, untried: 4 };

export type WorkerConfig = BackedConfig & { TGDM_URL: string; MANTIS_URL: string; MOTH_URL: string };

function buildSweep(config: WorkerConfig, services: Services, logger: Logger) {
  return createSweepEffects({
    stalePending: () => selectStalePending(services.db, 5000, 1000),
    enqueue: (rows) =>
      services.queues.enqueueEffectRows(rows, {
        attempts: config.EFFECT_ATTEMPTS,
        backoffMs: config.EFFECT_BACKOFF_MS,
      }),
    logger,
  });
}

/**
 * The webhooks' own pools. Their commits are bookkeeping a lost commit merely repeats (a fan-out
 * redone, a delivery sent again with its id): they need not wait for the disk.
 */
const openWebhookPools = (config: WorkerConfig) => ({
  answering: createDb(config.DATABASE_URL, WEBHOOK_CONNECTIONS.answering, { asyncCommit: true }),
  untried: createDb(config.DATABASE_URL, WEBHOOK_CONNECTIONS.untried, { asyncCommit: true }),
});

/** The webhook fan-out and the effect sweeper, each on its scheduler (one, whoever asks). */
async function scheduleSweeps(config: WorkerConfig, services: Services): Promise<void> {
  await services.queues.fanOutWebhooks.upsertJobScheduler(
    'fan-out-webhooks',
    { every: config.WEBHOOK_FANOUT_MS },
    { name: QUEUES.fanOutWebhooks, opts: QUEUE_TABLE.fanOutWebhooks.jobOptions },
  );
  await services.queues.sweepEffects.upsertJobScheduler(
    'sweep-pending-effects',
    { every: config.SWEEP_INTERVAL_SECONDS * 1000 },
    { name: QUEUES.sweepEffects, opts: QUEUE_TABLE.sweepEffects.jobOptions },
  );
}

/** The `worker` role: round evaluation, the effect jobs and the effect sweeper. Run any number. */
export async function startWorker(config: WorkerConfig, logger: Logger, options: OpsOptions = {}) {
  // Effects and the sequencer share this pool (the evaluation and the webhooks have their own).
  const services = await openServices(config, 'worker', 20);
  const { db } = services;
  const metrics = options.metrics ?? createMetrics('worker', true);
  const connection = services.bullConnection('worker');
  const opts = {
    connection,
    prefix: config.QUEUE_PREFIX,
    lockDuration: config.JOB_LOCK_MS,
    stalledInterval: config.JOB_LOCK_MS,
  };
  const { evaluate, evaluationDb } = buildEvaluation(config, services, metrics, logger);
  const dispatch = createDispatchEffects({ enqueueEffects: services.enqueueEffects });
  const effects = buildEffects(config, services, metrics, logger);
  const sweep = buildSweep(config, services, logger);
  // A fleet's storm of effects holding the shared pool must not hold up a healthy receiver's news,
  // nor 30 dead receivers' bookkeeping (src/db's webhook pools).
  const webhookPools = openWebhookPools(config);
  const { fanOutWebhooks, deliverWebhook } = buildWebhooks(config, webhookPools, services, logger);

  const workers = await startConsumers(
    {
      queues: {
        evaluateRound: (job) => evaluate(job.data),
        dispatchEffects: (job) => dispatch(job.data),
        sweepEffects: () => sweep(),
        fanOutWebhooks: () => fanOutWebhooks(),
        deliverWebhook: (job, token) => deliverWebhook(job, token),
      },
      effects,
    },
    opts,
    logger,
  );
  await scheduleSweeps(config, services);
  addServiceGauges(metrics, services);
  // Events are numbered at commit by any worker or gateway (one at a time).
  const sequencer = createSequencer({ db, logger });
  sequencer.start();
  const ops = await startRoleOps(config, options, metrics, services.readiness);
  logger.info({ opsPort: ops?.port }, 'worker started');
  const role: Role & { metrics: typeof metrics; opsPort: number | undefined } = {
    metrics,
    opsPort: ops?.port,
    async stop() {
      await ops?.stop();
      await Promise.all(workers.map((w) => w.close()));
      await sequencer.stop();
      await evaluationDb.destroy();
      await Promise.all([webhookPools.answering.destroy(), webhookPools.untried.destroy()]);
      await services.close();
    },
  };
  return role;
}

/**
 * The evaluation of rounds, with a pool of its own: a flood of effect jobs holding every connection
 * of the shared pool must not delay the next detection.
 */
function buildEvaluation(config: WorkerConfig, services: Services, metrics: Metrics, logger: Logger) {
  const { rounds } = services;
  const evaluationDb = createDb(config.DATABASE_URL, EVALUATIONS_AT_ONCE * PARALLEL_BATCHES);
  const settings = () => services.settings.current();
  const evaluate = createEvaluateRoundJob({
    evaluateRound: createEvaluateRound({
      db: evaluationDb,
      liveness: services.liveness,
      busLosses: services.busLosses,
      rounds,
      settings,
      connectDevices: createConnectDevices({ db: evaluationDb, settings }),
      confirmRound: createConfirmRound({
        rounds,
        leases: createShardLeases(services.redis, services.keys),
        shards: config.SHARDS,
        metrics,
        logger,
      }),
      handOffEffects: (done) => services.queues.dispatchEffects(done),
      parallelBatches: PARALLEL_BATCHES,
      metrics,
      logger,
    }),
  });
  return { evaluate, evaluationDb };
}

/** The consumer of each effect kind's queue. */
function buildEffects(config: WorkerConfig, services: Services, metrics: Metrics, logger: Logger) {
  const { db } = services;
  const tgdm = createTgdm(config.TGDM_URL, config.HTTP_TIMEOUT_MS);
  const mantis = createMantis(config.MANTIS_URL, config.HTTP_TIMEOUT_MS);
  const effects: EffectDefinition[] = [
    createAbortTask({ abortSessionTask }),
    createStopRecording({ stopRecording: stopRecordingOperation({ db, tgdm }) }),
    createStopAnalysisStreams({ stopStreams: stopStreamsOperation({ db, mantis }) }),
    createStartRecording({
      startRecording: startRecordingOperation({
        db,
        tgdm,
        mothUrl: config.MOTH_PUBLIC_URL ?? config.MOTH_URL,
      }),
    }),
  ];
  return new Map(
    effects.map((def) => [
      def.kind,
      effectProcessor(def, {
        db,
        metrics,
        logger: logger.child({ effect: def.kind }),
        notYetDelayMs: config.EFFECT_BACKOFF_MS,
      }),
    ]),
  );
}

/** The webhook jobs: starting the pumps of webhooks with work, and the pumps themselves. */
function buildWebhooks(
  config: WorkerConfig,
  pools: { answering: Db; untried: Db },
  services: Services,
  logger: Logger,
) {
  return {
    fanOutWebhooks: createFanOutWebhooks({
      withWork: () => webhooksWithWork(pools.answering, 10_000),
      startPumps: (ids) => services.queues.startPumps(ids),
    }),
    deliverWebhook: createDeliverWebhookJob({
      deliverWebhook: createDeliverWebhook({
        db: pools.answering,
        untriedDb: pools.untried,
        destinations: createDestinationPolicy(config.WEBHOOK_ALLOW_HOSTS),
        logger: logger.child({ part: 'webhooks' }),
        attempts: config.WEBHOOK_ATTEMPTS,
        backoffMs: config.WEBHOOK_BACKOFF_MS,
        maxBacklog: config.WEBHOOK_MAX_BACKLOG,
      }),
    }),
  };
}
