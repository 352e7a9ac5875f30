import { Worker, type Job, type WorkerOptions } from 'bullmq';
import type { EffectKind } from '../domain/effects';
import type { Logger } from '../logger';
import { effectQueue, QUEUE_TABLE, type EffectJobData, type JobData, type QueueId } from './table';

/** What runs one job of a queue (BullMQ's lock token lets it move the job, e.g. to the delayed set). */
export type Consumer<Data> = (job: Job<Data>, token?: string) => Promise<unknown>;

/** The queues a process consumes, and what runs their jobs: the table says how many at once. */
export interface Consumers {
  readonly queues: { readonly [K in QueueId]?: Consumer<JobData[K]> };
  /** One consumer per effect kind, each on the kind's own queue. */
  readonly effects?: ReadonlyMap<EffectKind, Consumer<EffectJobData>>;
}

/**
 * Starts a BullMQ worker for each queue given, with the table's concurrency (`base`: the connection,
 * the prefix, the lock), each reporting its errors; resolves once every one is ready.
 */
export async function startConsumers(
  consumers: Consumers,
  base: Omit<WorkerOptions, 'concurrency'>,
  logger: Logger,
): Promise<Worker[]> {
  const specs: (readonly [{ readonly name: string; readonly concurrency: number }, Consumer<never>])[] = [
    ...(Object.entries(consumers.queues) as [QueueId, Consumer<never>][]).map(
      ([id, run]) => [QUEUE_TABLE[id], run] as const,
    ),
    ...[...(consumers.effects ?? [])].map(([kind, run]) => [effectQueue(kind), run] as const),
  ];
  const workers = specs.map(
    ([spec, run]) =>
      new Worker(spec.name, run as Consumer<unknown>, { ...base, concurrency: spec.concurrency }),
  );
  for (const w of workers)
    w.on('error', (err) => logger.warn({ err: err.message, queue: w.name }, 'worker error'));
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  return workers;
}
