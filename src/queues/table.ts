import type { JobsOptions } from 'bullmq';
import type { EffectKind, SessionEffects } from '../domain/effects';

/** A queue: its name (kebab-case verb-noun), how many of its jobs one consumer runs at once, their options. */
export interface QueueSpec {
  readonly name: string;
  readonly concurrency: number;
  readonly jobOptions: JobsOptions;
}

/** What the jobs of each queue carry. */
export interface JobData {
  /** Jobs of the round scheduler: the round is the counter's next. */
  readonly issueRound: Record<string, never>;
  readonly evaluateRound: { readonly round: number };
  /** The effects of a chunk of committed transitions, to be enqueued off the evaluation's path. */
  readonly dispatchEffects: { readonly sessions: readonly SessionEffects[] };
  readonly sweepEffects: Record<string, never>;
  readonly fanOutWebhooks: Record<string, never>;
  /** One webhook's pump. */
  readonly deliverWebhook: { readonly webhookId: string };
}

/** What an effect job carries (each effect kind has a queue of its own). */
export interface EffectJobData {
  readonly sessionId: string;
  readonly deviceId: string;
}

const KEEP = {
  scheduled: { removeOnComplete: 10, removeOnFail: 100 },
  anHour: { removeOnComplete: { age: 3600, count: 1000 } },
} as const;

/**
 * Every queue but the effects', with what its consumers and producers need: one place to read what
 * runs where, how much at once, and how often it is tried.
 */
export const QUEUE_TABLE = {
  issueRound: {
    name: 'issue-round',
    concurrency: 1,
    jobOptions: { removeOnComplete: 100, removeOnFail: 500 },
  },
  evaluateRound: {
    name: 'evaluate-round',
    // A slow evaluation never holds up the next round's.
    concurrency: 2,
    jobOptions: {
      attempts: 10,
      backoff: { type: 'exponential', delay: 500 },
      ...KEEP.anHour,
      removeOnFail: { age: 24 * 3600 },
    },
  },
  dispatchEffects: {
    name: 'dispatch-effects',
    concurrency: 4,
    jobOptions: {
      attempts: 10,
      backoff: { type: 'exponential', delay: 500 },
      ...KEEP.anHour,
      removeOnFail: { age: 7 * 24 * 3600 },
    },
  },
  sweepEffects: { name: 'sweep-effects', concurrency: 1, jobOptions: KEEP.scheduled },
  fanOutWebhooks: { name: 'fan-out-webhooks', concurrency: 1, jobOptions: KEEP.scheduled },
  // One pump per webhook: a receiver holds at most one of these slots (while it is tried: each
  // attempt times out after 5 s; none while it rests after a failure or its circuit is open).
  deliverWebhook: {
    name: 'deliver-webhook',
    concurrency: 64,
    jobOptions: { removeOnComplete: true, removeOnFail: true, attempts: 3 },
  },
} as const satisfies { readonly [K in keyof JobData]: QueueSpec };

export type QueueId = keyof typeof QUEUE_TABLE;

/** Each effect kind has a queue of its own, so one outage never delays another (TGDM's, a task abort). */
export const effectQueue = (kind: EffectKind) => ({ name: kind, concurrency: 8 });

/** How often an effect job is tried: the deployment's (EFFECT_ATTEMPTS, EFFECT_BACKOFF_MS). */
export interface EffectRetryPolicy {
  readonly attempts: number;
  readonly backoffMs: number;
}

export const effectJobOptions = (retry: EffectRetryPolicy): JobsOptions => ({
  attempts: retry.attempts,
  backoff: { type: 'exponential', delay: retry.backoffMs },
  removeOnComplete: { age: 24 * 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
});

/** Queue names, by id. */
export const QUEUES = Object.fromEntries(
  Object.entries(QUEUE_TABLE).map(([id, spec]) => [id, spec.name]),
) as { readonly [K in QueueId]: (typeof QUEUE_TABLE)[K]['name'] };

/** The job scheduler that issues HEALTHCHECK rounds. */
export const ROUND_SCHEDULER_ID = 'health-check-rounds';
