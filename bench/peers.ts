// What a team builds instead of rollcall, written as a competent engineer would, for the bench to run
// beside it: `redis-ttl` (a key per device with a TTL refreshed by each heartbeat, and keyspace expiry
// notifications) and `pg-last-seen` (a last_seen_at column updated in batches, and a periodic scan).
// Each authenticates a heartbeat as rollcall does (decode the frame, hash the token, find the device)
// and gets its heartbeats by a function call: no socket, which only favours it.
import type { Knex } from 'knex';
import { tokenHash } from '../src/domain/credentials';
import { decodeInbound } from '../src/moth/codec';
import { createRedis, type RedisClient } from '../src/redis/connection';

export interface Peer {
  /** Takes one heartbeat frame, as it came off the wire. */
  heartbeat(frame: Buffer): void;
  /** Writes what is buffered. */
  flush(): Promise<void>;
  /** The part that decides disconnects (subscriber, scanner) stops, or comes back. */
  stopDetector(): Promise<void>;
  startDetector(): Promise<void>;
  close(): Promise<void>;
}

/** Every disconnect a peer decided, and when: device id -> epoch ms of each decision. */
export type Decisions = Map<string, number[]>;

/** Notes a disconnect decision about a device, made at `at`. */
export function decide(decisions: Decisions, id: string, at: number): void {
  const made = decisions.get(id);
  if (made) made.push(at);
  else decisions.set(id, [at]);
}

/** Device id of a heartbeat frame, authenticated by its token, or undefined. */
function authenticate(frame: Buffer, deviceOf: ReadonlyMap<string, string>): string | undefined {
  const msg = decodeInbound(frame);
  return msg.kind === 'heartbeat' ? deviceOf.get(tokenHash(msg.token)) : undefined;
}

const FLUSH_EVERY_MS = 5;
const BATCH = 1000;
const WRITERS = 3;

/**
 * A buffer of heartbeats written by `write` in batches, at most FLUSH_EVERY_MS after they came, with
 * WRITERS batches in flight (as rollcall's ingestion has).
 */
function batcher<T>(write: (items: T[]) => Promise<void>) {
  let items: T[] = [];
  let timer: NodeJS.Timeout | undefined;
  const writers: Promise<void>[] = Array.from({ length: WRITERS }, () => Promise.resolve());
  let turn = 0;
  const flush = (): Promise<void> => {
    clearTimeout(timer);
    timer = undefined;
    if (items.length > 0) {
      const batch = items;
      items = [];
      const slot = turn++ % WRITERS;
      writers[slot] = writers[slot]!.then(() => write(batch)).catch(() => {});
    }
    return Promise.all(writers).then(() => {});
  };
  return {
    push(item: T) {
      items.push(item);
      if (items.length >= BATCH) void flush();
      else timer ??= setTimeout(() => void flush(), FLUSH_EVERY_MS);
    },
    flush,
  };
}

/** Heartbeats a peer takes per second, pushed as fast as it writes them, over `ms`. */
export async function ingestRate(peer: Peer, frames: Buffer[], ms: number): Promise<number> {
  let sent = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    for (const f of frames) peer.heartbeat(f);
    await peer.flush();
    sent += frames.length;
  }
  return Math.round(sent / ((performance.now() - t0) / 1000));
}

/**
 * `SET <prefix>device:<id> 1 EX <timeout>` per heartbeat (pipelined), `notify-keyspace-events Ex`, and a
 * subscriber that marks the device disconnected when its key expires.
 */
export async function startRedisTtlPeer(opts: {
  redisUrl: string;
  prefix: string;
  timeoutSeconds: number;
  deviceOf: ReadonlyMap<string, string>;
  decisions: Decisions;
}): Promise<Peer> {
  const writer = createRedis(opts.redisUrl, 'worker');
  await writer.config('SET', 'notify-keyspace-events', 'Ex');
  const keyPrefix = `${opts.prefix}device:`;
  const writes = batcher<string>(async (ids) => {
    const pipeline = writer.pipeline();
    for (const id of ids) pipeline.set(keyPrefix + id, '1', 'EX', opts.timeoutSeconds);
    await pipeline.exec();
  });
  let subscriber: RedisClient | undefined;
  const startDetector = async () => {
    subscriber = createRedis(opts.redisUrl, 'worker');
    subscriber.on('message', (_channel: string, key: string) => {
      if (!key.startsWith(keyPrefix)) return;
      decide(opts.decisions, key.slice(keyPrefix.length), Date.now());
    });
    await subscriber.subscribe('__keyevent@0__:expired');
  };
  await startDetector();
  return {
    heartbeat(frame) {
      const id = authenticate(frame, opts.deviceOf);
      if (id !== undefined) writes.push(id);
    },
    flush: () => writes.flush(),
    async stopDetector() {
      subscriber?.disconnect();
      subscriber = undefined;
    },
    startDetector,
    async close() {
      await writes.flush();
      subscriber?.disconnect();
      writer.disconnect();
    },
  };
}

/**
 * `UPDATE ... SET last_seen_at` per heartbeat, batched (one statement per batch, the arrival times
 * kept), and a scan every interval that marks devices unseen for the timeout disconnected.
 */
export async function startPgLastSeenPeer(opts: {
  db: Knex;
  table: string;
  timeoutSeconds: number;
  intervalMs: number;
  deviceOf: ReadonlyMap<string, string>;
  decisions: Decisions;
}): Promise<Peer> {
  const { db, table } = opts;
  const writes = batcher<{ id: string; at: number }>(async (items) => {
    await db.raw(
      `UPDATE ${table} d SET last_seen_at = to_timestamp(v.at / 1000.0), status = 'CONNECTED'
       FROM unnest(?::uuid[], ?::float8[]) AS v(id, at) WHERE d.id = v.id`,
      [items.map((i) => i.id), items.map((i) => i.at)],
    );
  });
  let timer: NodeJS.Timeout | undefined;
  let scanning: Promise<void> = Promise.resolve();
  const scan = async () => {
    const { rows } = await db.raw<{ rows: { id: string }[] }>(
      `UPDATE ${table} SET status = 'DISCONNECTED'
       WHERE status = 'CONNECTED' AND last_seen_at < now() - make_interval(secs => ?) RETURNING id`,
      [opts.timeoutSeconds],
    );
    const now = Date.now();
    for (const { id } of rows) decide(opts.decisions, id, now);
  };
  const startDetector = async () => {
    timer = setInterval(() => {
      scanning = scanning.then(scan).catch(() => {});
    }, opts.intervalMs);
  };
  await startDetector();
  return {
    heartbeat(frame) {
      const id = authenticate(frame, opts.deviceOf);
      if (id !== undefined) writes.push({ id, at: Date.now() });
    },
    flush: () => writes.flush(),
    async stopDetector() {
      clearInterval(timer);
      await scanning;
    },
    startDetector,
    async close() {
      clearInterval(timer);
      await scanning;
      await writes.flush();
    },
  };
}

/** The table pg-last-seen keeps, with the partial index its scan uses. */
export async function createPgLastSeenTable(db: Knex, table: string, ids: readonly string[]): Promise<void> {
  await db.raw(
    `CREATE TABLE ${table} (id uuid PRIMARY KEY, status text NOT NULL, last_seen_at timestamptz NOT NULL)`,
  );
  await db.raw(`CREATE INDEX ON ${table} (last_seen_at) WHERE status = 'CONNECTED'`);
  for (let i = 0; i < ids.length; i += 5000)
    await db(table).insert(
      ids.slice(i, i + 5000).map((id) => ({ id, status: 'CONNECTED', last_seen_at: new Date() })),
    );
}

export type Fault = 'none' | 'detector-restart' | 'store-stall' | 'service-restart';
/** How long each fault lasts: restarts longer than the timeout, a stall shorter. */
export const FAULT_MS: Record<Fault, number> = {
  none: 0,
  'detector-restart': 5000,
  'store-stall': 2000,
  'service-restart': 5000,
};

export interface Outcome {
  /** Last heartbeat -> disconnect decision, seconds, for each silent device decided. */
  delays: number[];
  /** Devices disconnected while they were answering. */
  falseDisconnects: number;
  /** Silent devices never disconnected. */
  missed: number;
}

export interface Timing {
  intervalMs: number;
  timeoutSeconds: number;
  warmupMs: number;
  silentOverMs: number;
  /** How long after the timeout a decision still counts as made; later, the disconnect was missed. */
  graceMs: number;
}

/** When the fault begins, after the warm-up: once some devices have already gone silent. */
export const faultAt = (t: Timing) => t.warmupMs + t.silentOverMs / 5;
/** How long a scenario runs: every silent device given the timeout and some, after the fault. */
export const scenarioMs = (t: Timing, fault: Fault) =>
  t.warmupMs + t.silentOverMs + FAULT_MS[fault] + t.timeoutSeconds * 1000 + t.graceMs;

/** Judges decisions against each device's last heartbeat: any decision before it was a false one. */
export function judge(decisions: Decisions, lastSent: Map<string, number>, silent: Set<string>): Outcome {
  const delays: number[] = [];
  let falseDisconnects = 0;
  let missed = 0;
  for (const [id, last] of lastSent) {
    const at = decisions.get(id) ?? [];
    if (!silent.has(id)) {
      if (at.length > 0) falseDisconnects++;
      continue;
    }
    if (at.some((t) => t < last)) falseDisconnects++;
    const decided = at.find((t) => t >= last);
    if (decided === undefined) missed++;
    else delays.push((decided - last) / 1000);
  }
  return { delays, falseDisconnects, missed };
}

/**
 * Runs a fleet of push-heartbeat devices against a peer: each sends every interval at a phase of its
 * own, `silent` ones stop at a random time in the silence window, and `fault` strikes once.
 */
export async function runPeerScenario(opts: {
  peer: Peer;
  /** Where the peer writes its decisions. */
  decisions: Decisions;
  fleet: { id: string; frame: Buffer }[];
  silent: Set<string>;
  fault: Fault;
  timing: Timing;
  /** Stalls the peer's store (SIGSTOP) for ms. */
  stall: (ms: number) => Promise<void>;
}): Promise<Outcome> {
  const { peer, fleet, timing } = opts;
  const t0 = Date.now();
  const next = fleet.map(() => t0 + Math.random() * timing.intervalMs);
  const silentAt = new Map(
    [...opts.silent].map((id) => [id, t0 + timing.warmupMs + Math.random() * timing.silentOverMs]),
  );
  const lastSent = new Map(fleet.map((d) => [d.id, NaN]));
  let down = false;
  const tick = setInterval(() => {
    const now = Date.now();
    fleet.forEach((d, i) => {
      if (next[i]! > now) return;
      next[i]! += timing.intervalMs;
      if (now >= (silentAt.get(d.id) ?? Infinity)) return;
      lastSent.set(d.id, now);
      if (!down) peer.heartbeat(d.frame);
    });
  }, 5);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  await sleep(faultAt(timing));
  const length = FAULT_MS[opts.fault];
  if (opts.fault === 'detector-restart') {
    await peer.stopDetector();
    await sleep(length);
    await peer.startDetector();
  } else if (opts.fault === 'store-stall') {
    await opts.stall(length);
  } else if (opts.fault === 'service-restart') {
    down = true;
    await peer.stopDetector();
    await sleep(length);
    down = false;
    await peer.startDetector();
  }
  await sleep(scenarioMs(timing, opts.fault) - (Date.now() - t0));
  clearInterval(tick);
  await peer.flush();
  return judge(opts.decisions, lastSent, opts.silent);
}
