import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import { EFFECT_KINDS, effectJobId, type EffectKind, type SessionEffects } from '../domain/effects';
import {
  effectJobOptions,
  effectQueue,
  QUEUE_TABLE,
  QUEUES,
  ROUND_SCHEDULER_ID,
  type EffectJobData,
  type EffectRetryPolicy,
} from './table';

/** BullMQ connection options for a Redis URL. Workers wait forever for Redis (`maxRetriesPerRequest: null`). */
export function bullConnection(url: string, role: 'producer' | 'worker'): ConnectionOptions {
  return role === 'worker'
    ? { url, maxRetriesPerRequest: null, enableOfflineQueue: true }
    : { url, maxRetriesPerRequest: 1, enableOfflineQueue: true };
}

/** Sessions per dispatch job: a job's data stays a few tens of kilobytes. */
const DISPATCH_CHUNK = 250;

type EffectRow = { sessionId: string; deviceId: string; kind: EffectKind; notBefore?: number };

/** The effect jobs of these rows, by kind. */
function effectJobs(effects: readonly EffectRow[], policy: EffectRetryPolicy, now: number) {
  const byKind = new Map<EffectKind, { name: string; data: EffectJobData; opts: JobsOptions }[]>();
  for (const e of effects) {
    const job = {
      name: e.kind,
      data: { sessionId: e.sessionId, deviceId: e.deviceId },
      opts: {
        ...effectJobOptions(policy),
        jobId: effectJobId(e.kind, e.sessionId),
        // A held effect waits in the queue's delayed set (shown as such on the dashboard).
        ...(e.notBefore !== undefined && e.notBefore > now && { delay: e.notBefore - now }),
      },
    };
    const list = byKind.get(e.kind);
    if (list) list.push(job);
    else byKind.set(e.kind, [job]);
  }
  return byKind;
}

const sessionEffectRows = (sessions: readonly SessionEffects[]): EffectRow[] =>
  sessions.flatMap((s) =>
    s.effects.map((kind) => ({
      sessionId: s.sessionId,
      deviceId: s.deviceId,
      kind,
      ...(s.notBefore !== undefined && { notBefore: s.notBefore }),
    })),
  );

/** A webhook's pump: one job per webhook, its id the webhook's. */
const pumpJob = (webhookId: string) => ({
  name: QUEUES.deliverWebhook,
  data: { webhookId },
  opts: { ...QUEUE_TABLE.deliverWebhook.jobOptions, jobId: `pump-${webhookId}` },
});

/**
 * Dispatch jobs of DISPATCH_CHUNK sessions each, each named by its first session and that session's
 * first effect: a session's connect effects and its disconnect effects (kinds apart) are two jobs.
 */
function dispatchJobs(sessions: readonly SessionEffects[]) {
  const jobs = [];
  for (let i = 0; i < sessions.length; i += DISPATCH_CHUNK) {
    const chunk = sessions.slice(i, i + DISPATCH_CHUNK);
    jobs.push({
      name: QUEUES.dispatchEffects,
      data: {
        sessions: chunk.map(({ sessionId, deviceId, effects, notBefore }) => ({
          sessionId,
          deviceId,
          effects,
          ...(notBefore !== undefined && { notBefore }),
        })),
      },
      opts: {
        ...QUEUE_TABLE.dispatchEffects.jobOptions,
        jobId: `dispatch-${chunk[0]!.effects[0] ?? 'none'}-${chunk[0]!.sessionId}`,
      },
    });
  }
  return jobs;
}

/** The producer side of every queue, for processes that enqueue (web, gateway, worker). */
export function createQueues(connection: ConnectionOptions, prefix: string) {
  const opts = { connection, prefix };
  // Connection errors: ioredis reconnects by itself, and each call that needs Redis fails and says so.
  const all: Queue[] = [];
  const queue = (name: string) => {
    const q = new Queue(name, opts);
    q.on('error', () => {});
    all.push(q);
    return q;
  };
  const issueRound = queue(QUEUES.issueRound);
  const evaluateRound = queue(QUEUES.evaluateRound);
  const sweepEffects = queue(QUEUES.sweepEffects);
  const dispatchQueue = queue(QUEUES.dispatchEffects);
  const effects = new Map<EffectKind, Queue>(EFFECT_KINDS.map((k) => [k, queue(effectQueue(k).name)]));
  const fanOutWebhooks = queue(QUEUES.fanOutWebhooks);
  const deliverWebhook = queue(QUEUES.deliverWebhook);
  return {
    issueRound,
    evaluateRound,
    sweepEffects,
    fanOutWebhooks,
    effects,
    all: (): Queue[] => [...all],

    /**
     * Starts each webhook's pump, unless its job is already there (queued, running, or resting until
     * its receiver may be tried again): the job id is the webhook's.
     */
    async startPumps(webhookIds: readonly string[]): Promise<void> {
      await deliverWebhook.addBulk(webhookIds.map(pumpJob));
    },

    /** (Re)schedules the rounds; BullMQ keeps one scheduler, whatever the number of callers. */
    async scheduleRounds(intervalSeconds: number): Promise<void> {
      await issueRound.upsertJobScheduler(
        ROUND_SCHEDULER_ID,
        { every: intervalSeconds * 1000 },
        { name: QUEUES.issueRound, opts: QUEUE_TABLE.issueRound.jobOptions },
      );
    },

    /** Evaluation of round n: one job per round number, whoever asks and however often. */
    async enqueueEvaluation(round: number): Promise<void> {
      await evaluateRound.add(
        QUEUES.evaluateRound,
        { round },
        { ...QUEUE_TABLE.evaluateRound.jobOptions, jobId: `round-${round}` },
      );
    },

    /** Enqueues one job per effect row; deterministic ids make a repeat a no-op. */
    async enqueueEffectRows(effects: readonly EffectRow[], policy: EffectRetryPolicy): Promise<void> {
      for (const [kind, jobs] of effectJobs(effects, policy, Date.now()))
        await this.effects.get(kind)!.addBulk(jobs);
    },

    /** Enqueues one job per effect of these sessions. */
    async enqueueSessionEffects(
      sessions: readonly SessionEffects[],
      policy: EffectRetryPolicy,
    ): Promise<void> {
      await this.enqueueEffectRows(sessionEffectRows(sessions), policy);
    },

    /**
     * Hands the effects of many sessions to dispatch jobs (DISPATCH_CHUNK sessions each) that enqueue
     * them, in one round trip: a mass disconnect waits for a few small adds instead of one per
     * effect, and the fan-out runs on whichever workers are free. Deterministic ids (a chunk's first
     * session is unique to it) make a repeat a no-op; a lost dispatch is recovered by the sweeper.
     */
    async dispatchEffects(sessions: readonly SessionEffects[]): Promise<void> {
      if (sessions.length > 0) await dispatchQueue.addBulk(dispatchJobs(sessions));
    },

    async close(): Promise<void> {
      await Promise.all(this.all().map((q) => q.close()));
    },
  };
}
export type Queues = ReturnType<typeof createQueues>;
