import type { Db } from '../db/knex';
import { listenFor, OUTBOX_WRITTEN } from '../db/notifications';
import { numberPending } from '../db/outbox';
import type { Logger } from '../logger';
import { createLoop } from './loop';

/** Events numbered per transaction. */
const BATCH = 2000;
/** The poll behind the notifications (a notification lost with its connection costs this much). */
const POLL_MS = 250;
/**
 * Passes come at most this often while commits keep coming: a storm's commits, each its own
 * notification, were a call each (9,000 in a 9,900-robot storm, in the gateway and the worker).
 */
const GATHER_MS = 20;

/**
 * Numbers every event within moments of its commit, whether Moth is up or not: woken by the outbox's
 * notification at each commit, it gives each new event the next number of its stream (one process
 * at a time, under a lock, so the numbers stay contiguous). Every reader (the feed, the live streams,
 * Moth publication, webhooks) then works from the numbered streams, none waiting for another. Runs
 * in every gateway and worker.
 */
export function createSequencer(deps: { db: Db; logger: Logger; pollMs?: number }) {
  const loop = createLoop({
    name: 'event numbering',
    pass: async () => (await numberPending(deps.db, BATCH)) >= BATCH,
    pollMs: deps.pollMs ?? POLL_MS,
    gatherMs: GATHER_MS,
    logger: deps.logger,
  });
  let listening: { close(): Promise<void> } | undefined;
  return {
    start(): void {
      loop.start();
      listening ??= listenFor(
        deps.db,
        OUTBOX_WRITTEN,
        () => loop.wake(),
        (err) => deps.logger.warn({ err: err.message }, 'lost the outbox notifications; polling meanwhile'),
      );
    },
    async stop(): Promise<void> {
      await listening?.close();
      listening = undefined;
      await loop.stop();
    },
  };
}
