import { Worker } from 'bullmq';
import { createEvaluateRound } from '../../jobs/evaluate-round';
import type { Logger } from '../logger';
import { createMetrics } from '../metrics';
import { bullConnection } from '../queues/connection';
import { QUEUES } from '../queues/names';
import { createRounds } from '../redis/rounds';
import type { Role } from './role';
import { createServices, type BackedConfig } from './services';

/** The `worker` role: round evaluation and the effect jobs. Run any number. */
export async function startWorker(config: BackedConfig, logger: Logger) {
  const services = createServices(config, 'worker');
  const metrics = createMetrics('worker', true);
  const rounds = createRounds(services.redis, services.keys);
  const connection = bullConnection(config.REDIS_URL, 'worker');
  const evaluate = createEvaluateRound({
    db: services.db,
    liveness: services.liveness,
    rounds,
    maxMisses: async () => (await services.settings.current())['device.healthcheckMaxConsecutiveMisses'],
    automaticRecording: async () => (await services.settings.current())['recording.automatic'],
    enqueueEffects: services.enqueueEffects,
    metrics,
    logger,
  });
  const workers = [
    new Worker(QUEUES.evaluateRound, (job) => evaluate(job.data as { round: number }), {
      connection,
      prefix: config.QUEUE_PREFIX,
      concurrency: 2,
    }),
  ];
  for (const w of workers)
    w.on('error', (err) => logger.warn({ err: err.message, queue: w.name }, 'worker error'));
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  logger.info('worker started');
  const role: Role & { metrics: typeof metrics } = {
    metrics,
    async stop() {
      await Promise.all(workers.map((w) => w.close()));
      await services.close();
    },
  };
  return role;
}
