import { UnrecoverableError, type Job } from 'bullmq';
import type { EffectKind } from '../domain/effects';
import { findEffect, finishEffect, noteEffectError, recordAttempt, sessionEnd } from '../db/effects';
import type { Db } from '../db/knex';
import { IntegrationError } from '../integrations/http-client';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';

export interface EffectJobData {
  readonly sessionId: string;
  readonly deviceId: string;
}

export interface EffectDefinition {
  readonly kind: EffectKind;
  /**
   * Does the work. It must be idempotent and must end the effect itself (finishEffect DONE) in the
   * same transaction as its last state change, so that a duplicate run finds it done.
   */
  readonly run: (data: EffectJobData) => Promise<void>;
  /** Cleans up after a permanent failure (e.g. marks half-started resources FAILED). */
  readonly onFailed?: (data: EffectJobData, error: string) => Promise<void>;
}

export interface RunEffectDeps {
  readonly db: Db;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/**
 * Wraps an effect as a BullMQ processor around its ledger row: skips an effect that already ended,
 * counts the attempt, records the last error, and turns a permanent failure (a 4xx from TGDM/Mantis)
 * or the last attempt into FAILED; transient errors are rethrown so BullMQ retries with backoff.
 */
export function effectProcessor(def: EffectDefinition, deps: RunEffectDeps) {
  return async (job: Pick<Job<EffectJobData>, 'data' | 'attemptsMade' | 'opts' | 'id'>): Promise<string> => {
    const { sessionId } = job.data;
    const before = await findEffect(deps.db, sessionId, def.kind);
    if (!before) throw new UnrecoverableError(`no effect row for ${def.kind} of session ${sessionId}`);
    if (before.status !== 'PENDING') return `already ${before.status}`;
    await recordAttempt(deps.db, sessionId, def.kind);
    try {
      await def.run(job.data);
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      const permanent = err instanceof IntegrationError && err.permanent;
      const last = permanent || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (last) {
        await def.onFailed?.(job.data, message);
        if (await finishEffect(deps.db, sessionId, def.kind, 'FAILED', message)) {
          deps.metrics.effects.inc({ effect: def.kind, outcome: 'failed' });
        }
        deps.logger.error(
          { effect: def.kind, sessionId, jobId: job.id, err: message },
          'effect failed for good',
        );
      } else {
        await noteEffectError(deps.db, sessionId, def.kind, message);
        deps.logger.warn(
          { effect: def.kind, sessionId, jobId: job.id, err: message, attempt: job.attemptsMade + 1 },
          'effect will retry',
        );
      }
      throw permanent ? new UnrecoverableError(message) : err;
    }
    const after = await findEffect(deps.db, sessionId, def.kind);
    // Every path of `run` must end the effect; one that did not is retried rather than lost.
    if (after?.status === 'PENDING') throw new Error(`${def.kind} returned without ending the effect`);
    if (after?.status === 'DONE') {
      deps.metrics.effects.inc({ effect: def.kind, outcome: 'done' });
      const end = await sessionEnd(deps.db, sessionId);
      const from = end?.endedAt ?? after.createdAt;
      if (after.doneAt)
        deps.metrics.effectSeconds.observe({ effect: def.kind }, (+after.doneAt - +from) / 1000);
    }
    return 'done';
  };
}
