import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { EffectKind } from '../domain/effects';
import { completeEffect, failEffect, findEffect, noteEffectError, recordAttempt } from '../db/effects';
import type { Db, Tx } from '../db/knex';
import { IntegrationError } from '../integrations/http-client';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import type { EffectJobData } from '../queues/table';

/**
 * What one run of an effect came to: done (with, optionally, a last step that commits with the end
 * of the effect), or not yet (to run again later without spending an attempt).
 */
export type EffectOutcome =
  | { readonly done: true; readonly last?: (trx: Tx) => Promise<void> }
  | { readonly done: false; readonly reason: string };

export const done = (last?: (trx: Tx) => Promise<void>): EffectOutcome => ({
  done: true,
  ...(last && { last }),
});
export const notYet = (reason: string): EffectOutcome => ({ done: false, reason });

export interface EffectDefinition {
  readonly kind: EffectKind;
  /** Does the work. It must be idempotent: a stalled job runs again, and so may a duplicate. */
  readonly run: (data: EffectJobData) => Promise<EffectOutcome>;
  /** Cleans up after a permanent failure (e.g. marks half-started resources FAILED). */
  readonly onFailed?: (data: EffectJobData, error: string) => Promise<void>;
}

export interface RunEffectDeps {
  readonly db: Db;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** How long a "not yet" waits before it runs again. */
  readonly notYetDelayMs: number;
}

type EffectJob = Pick<Job<EffectJobData>, 'data' | 'attemptsMade' | 'opts' | 'id'> &
  Partial<Pick<Job<EffectJobData>, 'moveToDelayed'>>;

/**
 * Wraps an effect as a BullMQ processor around its ledger row. The runner, not the effect, owns the
 * row: it skips an effect that already ended, counts each attempt, and ends it DONE under a row lock
 * in one transaction with the effect's last step (a duplicate run waits on the lock, then finds it
 * done). A "not yet" goes back to the delayed set (BullMQ's DelayedError: no attempt is spent). A
 * permanent failure (a 4xx from TGDM/Mantis) or the last attempt ends it FAILED; other errors are
 * rethrown for BullMQ to retry with backoff.
 */
export function effectProcessor(def: EffectDefinition, deps: RunEffectDeps) {
  const { kind } = def;
  // One statement ends it; with a last step, the two commit together (the step only if it ended here).
  const finishDone = (sessionId: string, outcome: { last?: (trx: Tx) => Promise<void> }) => {
    const { last } = outcome;
    if (!last) return completeEffect(deps.db, sessionId, kind);
    return deps.db.transaction(async (trx) => {
      const ended = await completeEffect(trx, sessionId, kind);
      if (ended) await last(trx);
      return ended;
    });
  };

  return async (job: EffectJob, token?: string): Promise<string> => {
    const { sessionId } = job.data;
    const before = await findEffect(deps.db, sessionId, kind);
    if (!before) throw new UnrecoverableError(`no effect row for ${kind} of session ${sessionId}`);
    if (before.status !== 'PENDING') return `already ${before.status}`;
    let outcome: EffectOutcome;
    let ended: Awaited<ReturnType<typeof finishDone>>;
    try {
      outcome = await def.run(job.data);
      if (outcome.done) ended = await finishDone(sessionId, outcome);
    } catch (err) {
      throw await failed(job, err);
    }
    if (!outcome.done) {
      await noteEffectError(deps.db, sessionId, kind, `not yet: ${outcome.reason}`);
      await job.moveToDelayed!(Date.now() + deps.notYetDelayMs, token);
      throw new DelayedError(outcome.reason);
    }
    if (!ended) return 'already ended';
    deps.metrics.effects.inc({ effect: kind, outcome: 'done' });
    deps.metrics.effectSeconds.observe({ effect: kind }, (+ended.doneAt - +ended.owedSince) / 1000);
    return 'done';
  };

  /** Records a failed run; answers what to throw (UnrecoverableError stops BullMQ's retries). */
  async function failed(job: EffectJob, err: unknown): Promise<unknown> {
    const { sessionId } = job.data;
    await recordAttempt(deps.db, sessionId, kind);
    const message = (err as Error).message ?? String(err);
    const permanent = err instanceof IntegrationError && err.permanent;
    const last = permanent || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    if (last) {
      await def.onFailed?.(job.data, message);
      if (await failEffect(deps.db, sessionId, kind, message)) {
        deps.metrics.effects.inc({ effect: kind, outcome: 'failed' });
      }
      deps.logger.error({ effect: kind, sessionId, jobId: job.id, err: message }, 'effect failed for good');
    } else {
      await noteEffectError(deps.db, sessionId, kind, message);
      deps.logger.warn(
        { effect: kind, sessionId, jobId: job.id, err: message, attempt: job.attemptsMade + 1 },
        'effect will retry',
      );
    }
    return permanent ? new UnrecoverableError(message) : err;
  }
}
