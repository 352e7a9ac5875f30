import type { Db } from '../db/knex';
import {
  dueDeliveries,
  fanOutTo,
  findWebhook,
  noteReceiverOutcome,
  passOverStale,
  reconnectedSince,
  recordDelivered,
  recordDeliveryAttempt,
  skipDelivery,
  skipPending,
  type Delivery,
} from '../db/webhooks';
import { circuitState, signDelivery, standardSignature, type Webhook } from '../domain/webhooks';
import type { DestinationPolicy } from '../domain/destinations';
import { post } from '../integrations/http-post';
import type { Logger } from '../logger';

const TIMEOUT_MS = 5000;
/** One run of a pump delivers at most this long, then gives its slot to the next webhook's pump. */
const RUN_MS = 10_000;
/** A failing receiver is tried again after the backoff, doubling with each failure in a row, at most this. */
const BACKOFF_MAX_MS = 5 * 60_000;
/**
 * Due deliveries read at once, once the receiver answered; the next read starts as soon as no more
 * than this many wait, so the senders never run dry while a read (and its fan-out) is on its way. A
 * read costs a few round trips whatever its size, each 50-100 ms in a storm on a loaded machine:
 * with pages of 1,000 a 9,900-robot storm's rows were written sooner than with 500 (p50 1.6 s
 * against 2.5 s after the commit, one run each), and the senders then never ran dry.
 */
const READ_AHEAD = 1000;
/** Events of the stream a pump reads at a time for its own fan-out. */
const FAN_OUT_EVENTS = 1000;
/**
 * A pump whose receiver answers and that ran dry waits this long for news before it gives up its
 * slot: in a storm the next events are numbered within moments, and a run ended costs a new job.
 */
const LINGER_MS = 250;

/** What a pump's run ended with: nothing due any more, or a receiver to try again later. */
export type PumpOutcome = { readonly idle: true } | { readonly retryAt: number; readonly why: string };

export interface DeliverWebhookDeps {
  /** The pool of receivers that answered in this process and have not failed since. */
  readonly db: Db;
  /**
   * The pool of the others (new, failing or dead): however many of them there are, their reads and
   * records never queue ahead of an answering receiver's.
   */
  readonly untriedDb: Db;
  /** Where the receivers may be (an address it refuses is never connected to). */
  readonly destinations: DestinationPolicy;
  readonly logger: Logger;
  /** Attempts per delivery. */
  readonly attempts: number;
  /** The first backoff after a failure. */
  readonly backoffMs: number;
  /**
   * Pending deliveries a webhook may have (the oldest beyond are skipped), and events of its types
   * waiting in the stream at a run's first fan-out (the cursor passes over the oldest beyond).
   */
  readonly maxBacklog: number;
  readonly now?: () => number;
}

/** What the pumps of one process share: the pools, and which receivers answered. */
interface Pumps {
  readonly deps: DeliverWebhookDeps;
  readonly now: () => number;
  /** Webhooks whose receiver answered in this process and has not failed since. */
  readonly answering: Set<string>;
  readonly poolOf: (webhookId: string) => Db;
}

/**
 * One webhook's pump: fans out the client events numbered since its cursor into its deliveries, and
 * delivers those due, oldest first, many at once once its receiver answers (one before). Each webhook
 * has one pump (one job), so a receiver that is down, slow or never answers delays only its own
 * deliveries: it holds at most one of the worker's slots, for at most one attempt's timeout, and its
 * reads and records go through a pool of their own. A failure ends the run: the pump is tried
 * again after a backoff (doubling) or, once its circuit opened (CIRCUIT_THRESHOLD failures in a row),
 * after the circuit's cool-down. Each body is signed with a timestamp; a delivery that failed its
 * last attempt is FAILED; a disconnect held for the webhook's offline time is sent only if the
 * device has not come back meanwhile. At least once: a crash after the receiver's 2xx sends it
 * again, with the same X-Rollcall-Delivery.
 */
export function createDeliverWebhook(deps: DeliverWebhookDeps) {
  const now = deps.now ?? Date.now;
  const answering = new Set<string>();
  const pumps: Pumps = {
    deps,
    now,
    answering,
    poolOf: (webhookId) => (answering.has(webhookId) ? deps.db : deps.untriedDb),
  };

  return async (webhookId: string): Promise<PumpOutcome> => {
    const webhook = await findWebhook(pumps.poolOf(webhookId), webhookId);
    if (!webhook) {
      await skipPending(pumps.poolOf(webhookId), webhookId, 'the webhook was deleted');
      return { idle: true };
    }
    const wait = restUntil(pumps, webhook);
    if (wait) return wait;
    const run = await deliverRun(pumps, webhook, now() + RUN_MS);
    if (run === 'failed')
      return restUntil(pumps, (await findWebhook(pumps.poolOf(webhookId), webhookId)) ?? webhook, true)!;
    return run === 'more' ? { retryAt: now(), why: 'its turn is over' } : { idle: true };
  };
}

/**
 * One run of a pump, a pipeline: the next deliveries are read (its own fan-out first) while earlier
 * ones are on their way, so the receiver never waits on the database. One sender starts, with one
 * delivery; the receiver's first answer (or one in this process since its last failure) brings its
 * `concurrency` of senders in all, each taking the oldest due delivery next, and reads of
 * READ_AHEAD. What the receiver took is recorded beside the next read, many in one statement (what
 * is taken and not yet recorded is never read again meanwhile). It ends when nothing is due (for a
 * receiver that answers, once nothing came for LINGER_MS more), at the first failure (no more are
 * sent; those on their way finish), or at `until` ('more': the pump gives its slot to the next
 * webhook's).
 */
async function deliverRun(
  pumps: Pumps,
  webhook: Webhook,
  until: number,
): Promise<'idle' | 'failed' | 'more'> {
  const run = createRunQueue(pumps, webhook, until);
  const senders: Promise<void>[] = [];
  const sender = async () => {
    for (let d = await run.next(); d; d = await run.next()) {
      const outcome = await attempt(pumps, webhook, d, () => (run.state.failed = true));
      if (typeof outcome === 'number') {
        run.took(d, outcome);
        if (!run.state.failed) pumps.answering.add(webhook.id);
      } else run.dropped(d);
      while (run.state.answered && !run.state.failed && senders.length < webhook.concurrency)
        senders.push(sender());
    }
  };
  senders.push(sender());
  for (let i = 0; i < senders.length; i++) await senders[i];
  return run.end();
}

/**
 * A run that ran dry waits LINGER_MS for news (`then` once it waited), once until news comes
 * (`found`): the next read that finds nothing after it ends the run.
 */
function createLinger(then: () => void) {
  let over = false;
  let waiting: Promise<void> | undefined;
  return {
    over: () => over,
    wait: () =>
      (waiting ??= new Promise<void>((resolve) => setTimeout(resolve, LINGER_MS)).then(() => {
        over = true;
        waiting = undefined;
        then();
      })),
    found: () => void (over = false),
  };
}

/**
 * The deliveries of a run, read ahead while earlier ones are on their way; what the receiver took
 * is recorded beside the next read. `state` is the run's: a failure stops it, an answer widens it.
 */
function createRunQueue(pumps: Pumps, webhook: Webhook, until: number) {
  // A receiver that answered in this process and has not failed since is not tried one at a time.
  const state = { failed: false, answered: pumps.answering.has(webhook.id) };
  const queue: Delivery[] = [];
  /** Read and not yet recorded: not read again meanwhile. */
  const claimed = new Set<string>();
  let taken: { id: string; statusCode: number }[] = [];
  let drained = false;
  let reading: Promise<void> | undefined;
  /** A read that failed ends the run (once what is on its way is over and recorded). */
  let readError: Error | undefined;
  /** Bounds the stream's backlog, once, before the run's first fan-out. */
  const trim = keepNewest(pumps, webhook);

  const flush = async () => {
    const batch = taken;
    taken = [];
    await recordDelivered(pumps.poolOf(webhook.id), batch);
    for (const d of batch) claimed.delete(d.id);
    // A failure meanwhile is the receiver's latest word: its circuit is not closed again.
    if (batch.length > 0 && !state.failed)
      await noteReceiverOutcome(pumps.poolOf(webhook.id), webhook.id, true);
  };
  const read = async () => {
    const [, { due, more }] = await Promise.all([flush(), readDue(pumps, webhook, state, claimed, trim)]);
    for (const d of due) claimed.add(d.id);
    queue.push(...due);
    drained = due.length === 0 && !more;
    if (due.length > 0) linger.found();
  };
  const linger = createLinger(() => (drained = false));
  const startReading = () => {
    reading ??= read()
      .catch((err: unknown) => void (readError = err instanceof Error ? err : new Error(String(err))))
      .finally(() => (reading = undefined));
  };

  return {
    state,
    async next(): Promise<Delivery | undefined> {
      while (!state.failed && readError === undefined && pumps.now() < until) {
        if (queue.length <= (state.answered ? READ_AHEAD : 0) && !drained) startReading();
        if (queue.length > 0) return queue.shift();
        if (reading) await reading;
        else if (state.answered && !linger.over()) await linger.wait();
        else return undefined;
      }
      return undefined;
    },
    took(d: Delivery, statusCode: number): void {
      taken.push({ id: d.id, statusCode });
      state.answered = true;
    },
    dropped(d: Delivery): void {
      claimed.delete(d.id);
    },
    /** Once the senders are done: what is on its way recorded, how the run ended. */
    async end(): Promise<'idle' | 'failed' | 'more'> {
      await reading;
      await flush();
      if (readError !== undefined) throw readError;
      if (state.failed) return 'failed';
      return queue.length > 0 || !drained ? 'more' : 'idle';
    },
  };
}

/**
 * The webhook's next due deliveries, its own fan-out first when none is due (after `beforeFanOut`).
 * Until its receiver answers, a pump writes a delivery only when it has none due to try: the news of
 * a receiver that is down waits in the stream, not as rows written for nothing while a storm loads
 * the database.
 */
async function readDue(
  pumps: Pumps,
  webhook: Webhook,
  { answered }: { readonly answered: boolean },
  claimed: Set<string>,
  beforeFanOut: () => Promise<void>,
) {
  const webhookId = webhook.id;
  const pool = pumps.poolOf(webhookId);
  let due = answered ? [] : await dueDeliveries(pool, webhookId, 1, [...claimed]);
  let more = false;
  if (due.length === 0) {
    const wanted = answered ? READ_AHEAD : 1;
    await beforeFanOut();
    more = (
      await fanOutTo(pool, webhook, {
        events: FAN_OUT_EVENTS,
        deliveries: wanted,
        backlog: pumps.deps.maxBacklog,
      })
    ).more;
    due = await dueDeliveries(pool, webhookId, wanted, [...claimed]);
  }
  return { due, more };
}

/**
 * A receiver back after a long outage gets the newest of its news, not all of it: its backlog is
 * bounded in the stream as in its deliveries. What is passed over is logged, and still in the feed.
 * Once a run (the function returned does it the first time it is called), before its first
 * fan-out: a dead receiver retries the delivery it has and fans out nothing, so the stream's tail,
 * which may be long, is not walked at each of its attempts.
 */
function keepNewest(pumps: Pumps, webhook: Webhook): () => Promise<void> {
  const kept = pumps.deps.maxBacklog;
  let done: Promise<void> | undefined;
  return () =>
    (done ??= passOverStale(pumps.poolOf(webhook.id), webhook.id, kept).then((passed) => {
      if (passed)
        pumps.deps.logger.warn(
          { webhookId: webhook.id, afterSeq: passed.from, throughSeq: passed.to, kept },
          'webhook far behind: its oldest events passed over (GET /events?after=afterSeq has them)',
        );
    }));
}

/** When a receiver that failed may be tried again: after its circuit's cool-down, or its backoff. */
function restUntil(pumps: Pumps, w: Webhook, justFailed = false): PumpOutcome | undefined {
  const now = pumps.now();
  if (circuitState(w, now) === 'open') return { retryAt: w.circuitOpenUntil!.getTime(), why: 'circuit open' };
  if (!justFailed) return undefined;
  const backoff = Math.min(
    BACKOFF_MAX_MS,
    pumps.deps.backoffMs * 2 ** Math.max(0, w.consecutiveFailures - 1),
  );
  return { retryAt: now + backoff * (0.8 + 0.4 * Math.random()), why: 'receiver failed' };
}

/**
 * One attempt at one delivery: the receiver's 2xx status, skipped, or failed (`onFailure` is told
 * at once, before the failure is recorded here).
 */
async function attempt(
  pumps: Pumps,
  webhook: Webhook,
  delivery: Delivery,
  onFailure: () => void,
): Promise<number | 'skipped' | 'failed'> {
  if (await cameBack(pumps, webhook, delivery)) {
    await skipDelivery(
      pumps.poolOf(webhook.id),
      delivery.id,
      `came back within ${webhook.offlineForSeconds} s`,
    );
    return 'skipped';
  }
  const body = JSON.stringify(delivery.body);
  const timestamp = Math.floor(pumps.now() / 1000);
  let statusCode: number | null = null;
  try {
    const headers = deliveryHeaders(webhook, delivery, timestamp, body);
    const res = await post(webhook.url, body, headers, TIMEOUT_MS, pumps.deps.destinations);
    statusCode = res.status;
    if (res.status < 200 || res.status >= 300) throw new Error(`answered ${res.status}`);
  } catch (err) {
    onFailure();
    await recordFailure(pumps, webhook, delivery, statusCode, (err as Error).message);
    return 'failed';
  }
  return statusCode;
}

/** A disconnect held for the webhook's offline time, whose device has come back since. */
const cameBack = async (pumps: Pumps, webhook: Webhook, delivery: Delivery) =>
  delivery.eventType === 'DEVICE_DISCONNECTED' &&
  webhook.offlineForSeconds !== null &&
  delivery.deviceId !== null &&
  reconnectedSince(pumps.poolOf(webhook.id), delivery.deviceId, new Date(delivery.body.occurredAt));

const deliveryHeaders = (webhook: Webhook, delivery: Delivery, timestamp: number, body: string) => ({
  'content-type': 'application/json',
  'user-agent': 'rollcall-webhooks',
  'webhook-id': delivery.id,
  'webhook-timestamp': String(timestamp),
  'webhook-signature': standardSignature(webhook.secret, delivery.id, timestamp, body),
  // The headers of earlier versions, kept while receivers move (docs/webhooks.md: deprecated).
  'x-rollcall-delivery': delivery.id,
  'x-rollcall-event': delivery.eventType,
  'x-rollcall-timestamp': String(timestamp),
  'x-rollcall-signature': signDelivery(webhook.secret, timestamp, body),
});

/** The receiver failed: its circuit counts it, the delivery's attempt is recorded (FAILED when last). */
async function recordFailure(
  pumps: Pumps,
  webhook: Webhook,
  delivery: Delivery,
  statusCode: number | null,
  message: string,
) {
  const last = delivery.attempts + 1 >= pumps.deps.attempts;
  pumps.answering.delete(webhook.id);
  await noteReceiverOutcome(pumps.deps.untriedDb, webhook.id, false);
  await recordDeliveryAttempt(pumps.deps.untriedDb, delivery.id, {
    statusCode,
    error: message,
    ...(last && { final: 'FAILED' as const }),
  });
  pumps.deps.logger.warn(
    { webhookId: webhook.id, deliveryId: delivery.id, statusCode, err: message, last },
    last ? 'webhook delivery failed for good' : 'webhook delivery will retry',
  );
}

export type DeliverWebhook = ReturnType<typeof createDeliverWebhook>;
