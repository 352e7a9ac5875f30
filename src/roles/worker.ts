import { Worker } from 'bullmq';
import { createAbortTask } from '../../jobs/abort-task';
import { createEvaluateRound } from '../../jobs/evaluate-round';
import { createStartRecording } from '../../jobs/start-recording';
import { createStopAnalysisStreams } from '../../jobs/stop-analysis-streams';
import { createStopRecording } from '../../jobs/stop-recording';
import { createSweepEffects } from '../../jobs/sweep-effects';
import { selectStalePending } from '../db/effects';
import { effectProcessor, type EffectDefinition } from '../effects/run-effect';
import { createMantis } from '../integrations/mantis';
import { createTgdm } from '../integrations/tgdm';
import type { Logger } from '../logger';
import { addScrapeGauges, createMetrics } from '../metrics';
import { countDevicesByStatus } from '../db/fleet';
import { bullConnection } from '../queues/connection';
import { effectQueueName, QUEUES } from '../queues/names';
import { createRounds } from '../redis/rounds';
import type { Role } from './role';
import { createServices, startRoleOps, type BackedConfig, type OpsOptions } from './services';

export type WorkerConfig = BackedConfig & { TGDM_URL: string; MANTIS_URL: string; MOTH_URL: string };

/** The `worker` role: round evaluation, the effect jobs and the effect sweeper. Run any number. */
export async function startWorker(config: WorkerConfig, logger: Logger, options: OpsOptions = {}) {
  const services = createServices(config, 'worker');
  const { db } = services;
  const metrics = options.metrics ?? createMetrics('worker', true);
  const rounds = createRounds(services.redis, services.keys);
  const connection = bullConnection(config.REDIS_URL, 'worker');
  const opts = {
    connection,
    prefix: config.QUEUE_PREFIX,
    lockDuration: config.JOB_LOCK_MS,
    stalledInterval: config.JOB_LOCK_MS,
  };
  const tgdm = createTgdm(config.TGDM_URL, config.HTTP_TIMEOUT_MS);
  const mantis = createMantis(config.MANTIS_URL, config.HTTP_TIMEOUT_MS);

  const evaluate = createEvaluateRound({
    db,
    liveness: services.liveness,
    rounds,
    settings: () => services.settings.current(),
    enqueueEffects: services.enqueueEffects,
    metrics,
    logger,
  });
  const effects: EffectDefinition[] = [
    createAbortTask({ db }),
    createStopRecording({ db, tgdm }),
    createStopAnalysisStreams({ db, mantis }),
    createStartRecording({ db, tgdm, mothUrl: config.MOTH_PUBLIC_URL ?? config.MOTH_URL }),
  ];
  const sweep = createSweepEffects({
    stalePending: () => selectStalePending(db, 5000, 1000),
    enqueue: (rows) =>
      services.queues.enqueueEffects(rows, {
        attempts: config.EFFECT_ATTEMPTS,
        backoffMs: config.EFFECT_BACKOFF_MS,
      }),
    logger,
  });

  const workers = [
    new Worker(QUEUES.evaluateRound, (job) => evaluate(job.data as { round: number }), {
      ...opts,
      concurrency: 2,
    }),
    // Each effect kind has its own queue and workers: a TGDM outage never delays a task abort.
    ...effects.map(
      (def) =>
        new Worker(
          effectQueueName(def.kind),
          effectProcessor(def, { db, metrics, logger: logger.child({ effect: def.kind }) }),
          {
            ...opts,
            concurrency: 8,
          },
        ),
    ),
    new Worker(QUEUES.sweepEffects, () => sweep(), { ...opts, concurrency: 1 }),
  ];
  for (const w of workers)
    w.on('error', (err) => logger.warn({ err: err.message, queue: w.name }, 'worker error'));
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  await services.queues.sweepEffects.upsertJobScheduler(
    'sweep-pending-effects',
    { every: config.SWEEP_INTERVAL_SECONDS * 1000 },
    { name: QUEUES.sweepEffects, opts: { removeOnComplete: 10, removeOnFail: 100 } },
  );
  addScrapeGauges(metrics, {
    deviceCounts: () => countDevicesByStatus(db),
    queueCounts: () =>
      Promise.all(
        services.queues.all().map(async (q) => ({ queue: q.name, counts: await q.getJobCounts() })),
      ),
  });
  const ops = await startRoleOps(config, options, metrics, services.readiness);
  logger.info({ opsPort: ops?.port }, 'worker started');
  const role: Role & { metrics: typeof metrics; opsPort: number | undefined } = {
    metrics,
    opsPort: ops?.port,
    async stop() {
      await ops?.stop();
      await Promise.all(workers.map((w) => w.close()));
      await services.close();
    },
  };
  return role;
}
