// `npm run bench [-- --quick] [-- --out FILE] [-- --only a,b]` (sections: memory, ingestion, evaluation,
// registration, detection, gateways, peers, storm): measures on this machine and prints
// each figure beside its target. A missed target is reported, not hidden.
import autocannon from 'autocannon';
import { stallProcess } from '../src/dev/processes';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'bullmq';
import { createDispatchEffects, type DispatchEffectsData } from '../jobs/dispatch-effects';
import { createConnectDevices } from '../src/operations/connect-device';
import { createConfirmRound } from '../src/operations/confirm-round';
import { createEvaluateRound } from '../src/operations/evaluate-round';
import { loadConfig } from '../src/config';
import { hashSecret, newToken, tokenHash } from '../src/domain/credentials';
import { createDb, migrateLatest, type Db } from '../src/db/knex';
import { findDeviceIdsByTokenHashes } from '../src/db/devices';
import { allowancesOf } from '../src/db/policies';
import { storeSecretHash, writeSettings } from '../src/db/settings';
import { startEmbeddedPostgres } from '../src/dev/embedded-postgres';
import { startEmbeddedRedis } from '../src/dev/embedded-redis';
import { createHeartbeatIngest } from '../src/gateway/heartbeat-ingest';
import { createLinkMeter } from '../src/gateway/link-meter';
import { healthcheck } from '../src/moth/codec';
import { createMantisSimulator, createTgdmSimulator } from '../src/integrations/simulator';
import { createLogger } from '../src/logger';
import { createMetrics } from '../src/metrics';
import { ThreadedMothHub } from '../src/moth/hub-thread';
import { SimulatedDevice } from '../src/dev/simulated-device';
import { bullConnection, createQueues } from '../src/queues/connection';
import { QUEUES } from '../src/queues/table';
import { createRedis, type RedisClient } from '../src/redis/connection';
import { redisKeys } from '../src/redis/keys';
import { createBusLossStore } from '../src/redis/bus-losses';
import { createLiveness } from '../src/redis/liveness';
import { createRounds } from '../src/redis/rounds';
import { createShardLeases } from '../src/redis/shard-leases';
import type { Knex } from 'knex';
import { shardOf } from '../src/domain/shards';
import { startGateway } from '../workers/roles/gateway';
import { startWorker } from '../workers/roles/worker';
import { createSettingsService } from '../src/settings-service';
import { storm } from './storm';
import { jsonLine, percentile, runTs, sleep, stopChildren, type Figure } from './support';
import {
  createPgLastSeenTable,
  decide,
  FAULT_MS,
  faultAt,
  ingestRate,
  judge,
  runPeerScenario,
  scenarioMs,
  startPgLastSeenPeer,
  startRedisTtlPeer,
  type Decisions,
  type Fault,
  type Outcome,
  type Timing,
} from './peers';

const { values: args } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, out: { type: 'string' }, only: { type: 'string' } },
});
const quick = args.quick;
const only = args.only?.split(',');
const SIZES = quick
  ? {
      ingestDevices: 500,
      ingestSeconds: 1,
      warmupMs: 500,
      seeded: 100_000,
      crossing: 1_000,
      regSeconds: 2,
      fleet: 200,
      silent: 20,
      silentOverMs: 1000,
      memDevices: 20_000,
      busFleet: 1_000,
      busRounds: 4,
    }
  : {
      ingestDevices: 10_000,
      ingestSeconds: 8,
      warmupMs: 4000,
      seeded: 1_000_000,
      crossing: 10_000,
      regSeconds: 10,
      fleet: 1000,
      silent: 100,
      silentOverMs: 5000,
      memDevices: 100_000,
      // The hub holds two sockets per robot, and a process may open 20,000 files on this machine.
      busFleet: 9_900,
      busRounds: 20,
    };

const figures: Figure[] = [];
const cores = cpus().length;
/** The load average at the start: figures taken on a busy machine say little about this code. */
const loadAtStart = loadavg()[0]!;
const busyAtStart = loadAtStart > cores;
const json: Record<string, unknown> = {
  quick,
  sizes: SIZES,
  machine: { cpus: cores, node: process.version, loadAverageAtStart: Math.round(loadAtStart * 100) / 100 },
};
function report(f: Figure) {
  figures.push(f);
  const verdict = f.met === null ? '' : f.met ? 'met' : 'MISSED';
  process.stdout.write(
    `  ${f.name.padEnd(58)} ${String(f.value).padStart(12)} ${f.unit.padEnd(10)} target ${f.target.padEnd(22)} ${verdict}${f.note ? `  (${f.note})` : ''}\n`,
  );
}
const silent = createLogger('silent');

// ---- one Postgres and one Redis for the whole run -------------------------------------------------
const dir = mkdtempSync(join(tmpdir(), 'rollcall-bench-'));
chmodSync(dir, 0o755);
const pg = await startEmbeddedPostgres(join(dir, 'postgres'), 'bench');
const redisServer = await startEmbeddedRedis(join(dir, 'redis'));
const db = createDb(pg.url, 20);
await migrateLatest(db);
const SECRET = 'bench-registration-secret';
await storeSecretHash(db, hashSecret(SECRET));
const redis = createRedis(redisServer.url, 'producer');
const baseEnv = { DATABASE_URL: pg.url, REDIS_URL: redisServer.url };

/** A migrated database of its own on the bench's Postgres, so no section sees another's rows. */
async function sectionDatabase(name: string) {
  await db.raw(`CREATE DATABASE ${name}`);
  const url = new URL(pg.url);
  url.pathname = `/${name}`;
  const sectionDb = createDb(url.toString(), 20);
  await migrateLatest(sectionDb);
  return { db: sectionDb, url: url.toString() };
}

async function insertDevices(db: Db, n: number, connected: boolean, prefix: string) {
  const devices: { id: string; token: string }[] = [];
  for (let i = 0; i < n; i += 5000) {
    const chunk = Array.from({ length: Math.min(5000, n - i) }, () => ({
      id: randomUUID(),
      token: newToken(),
    }));
    devices.push(...chunk);
    await db('devices').insert(
      chunk.map((d, k) => ({
        id: d.id,
        name: `${prefix}-${i + k}`,
        token_hash: tokenHash(d.token),
        public_channel: d.id,
        tracks: JSON.stringify([{ name: 'front', type: 'VIDEO' }]),
        actions: JSON.stringify(['PATROL']),
        status: connected ? 'CONNECTED' : 'DISCONNECTED',
      })),
    );
  }
  return devices;
}

/** Sets devices' heard round (one for all, or each its own) in their shard's connected index (overwriting). */
async function seedHeard(
  r: RedisClient,
  keys: ReturnType<typeof redisKeys>,
  ids: string[],
  score: number | ((id: string) => number),
) {
  const scoreOf = typeof score === 'number' ? () => score : score;
  const byShard = new Map<number, string[]>();
  for (const id of ids) {
    const s = shardOf(id, SHARDS);
    const group = byShard.get(s);
    if (group) group.push(id);
    else byShard.set(s, [id]);
  }
  for (const [s, group] of byShard)
    for (let i = 0; i < group.length; i += 10_000)
      await r.zadd(
        keys.liveness.shard(s).heard,
        ...group.slice(i, i + 10_000).flatMap((id) => [scoreOf(id), id]),
      );
}

// ---- 1. heartbeat ingestion through one gateway process ------------------------------------------
const ROUND_EVERY_MS = 1000;
const SHARDS = loadConfig({}).SHARDS;

/** Announces a new round every ROUND_EVERY_MS, as the round job does (the gateway opens it). */
function announceRounds(keys: ReturnType<typeof redisKeys>) {
  let n = 1;
  const timer = setInterval(() => {
    n++;
    void redis
      .set(keys.rounds.counter, n)
      .then(() => redis.publish(keys.rounds.announced, JSON.stringify(healthcheck(n, 1, new Date()))));
  }, ROUND_EVERY_MS);
  return () => clearInterval(timer);
}

/** The confirmation of rounds the bench closes by hand (none names its close: nothing to confirm). */
const confirmByHand = (rounds: ReturnType<typeof createRounds>, keys: ReturnType<typeof redisKeys>) =>
  createConfirmRound({
    rounds,
    leases: createShardLeases(redis, keys),
    shards: SHARDS,
    metrics: createMetrics('bench-confirm'),
    logger: silent,
  });

/** Live devices of a section database, with their bus ids. */
async function busesOf(db: Db): Promise<Map<string, string>> {
  const rows = await db('devices').select<{ id: string; bus_id: string }[]>('id', 'bus_id');
  return new Map(rows.map((r) => [r.id, r.bus_id]));
}

async function ingestion() {
  process.stdout.write(
    `\nheartbeat ingestion (one gateway process, ${SIZES.ingestDevices.toLocaleString('en')} devices; frames from a Moth-speaking source)\n`,
  );
  const { db, url } = await sectionDatabase('bench_ingestion');
  const prefix = 'bi';
  const keys = redisKeys(prefix);
  const liveness = createLiveness(redis, keys, SHARDS);
  const devices = await insertDevices(db, SIZES.ingestDevices, true, 'ing');
  const buses = await busesOf(db);
  // Steady state: tokens cached and devices connected, as after the first round.
  for (let i = 0; i < devices.length; i += 10_000) {
    const chunk = devices.slice(i, i + 10_000);
    await liveness.cacheTokens(chunk.map((d) => ({ tokenHash: tokenHash(d.token), deviceId: d.id })));
    await liveness.seed(
      chunk.map((d) => d.id),
      1,
    );
  }
  await redis.set(keys.rounds.counter, 1);
  await redis.set(keys.liveness.seeded, '1');
  await writeSettings(db, { 'device.healthcheckIntervalSeconds': 3600 });
  const fleetFile = join(dir, 'ingest-fleet.json');
  writeFileSync(fleetFile, JSON.stringify(devices.map((d) => ({ token: d.token, busId: buses.get(d.id) }))));

  /** A frame source for one mode: its pumping starts when its readers' sockets are all open. */
  async function startSource(perDevice: boolean) {
    const source = runTs('bench/fake-moth.ts', {
      FLEET_FILE: fleetFile,
      PER_DEVICE: perDevice ? '1' : '0',
      // No frame leaves before every socket that will carry frames is open: opening them under a
      // flood takes long, and it is not what is measured.
      START_AT: String(perDevice ? devices.length : 1),
    });
    return { source, port: Number(await source.waitLine((l) => /^\d+$/.test(l))) };
  }

  /** Heartbeats a gateway accepts per second, its frames from the source on `port`, and its longest turn. */
  async function measure(perDevice: boolean, port: number): Promise<{ rate: number; longestTurnMs: number }> {
    const gateway = runTs(
      'workers/gateway.ts',
      {
        ...baseEnv,
        DATABASE_URL: url,
        MOTH_URL: `ws://127.0.0.1:${port}`,
        MOTH_SHARED_BUS: perDevice ? 'false' : 'true',
        QUEUE_PREFIX: prefix,
        OPS_PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
      },
      // BENCH_PROFILE=<dir> writes a CPU profile of the gateway there.
      process.env.BENCH_PROFILE
        ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] }
        : {},
    );
    const started = JSON.parse(await gateway.waitLine(jsonLine('gateway started'), 120_000)) as {
      opsPort: number;
    };
    /** One scrape of the gateway's metrics (each scrape starts its event-loop delay figures again). */
    const scrape = async (): Promise<string> => {
      // A busy gateway may close a kept-alive connection just as it is reused: asked again, once.
      const get = () => fetch(`http://127.0.0.1:${started.opsPort}/metrics`);
      const res = await get()
        .catch(() => sleep(100).then(get))
        .catch((err: Error) => {
          throw new Error(
            `gateway gone (${err.message}: ${String(err.cause)}): ${gateway.stderr()} ${gateway.lines.slice(-3).join('\n')} exit ${gateway.child.exitCode} ${gateway.child.signalCode}`,
          );
        });
      return res.text();
    };
    const read = (text: string, pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? 0);
    const metric = async (pattern: RegExp): Promise<number> => read(await scrape(), pattern);
    const ACCEPTED = /rollcall_heartbeats_total\{[^}]*result="accepted"[^}]*\} (\d+)/;
    const accepted = () => metric(ACCEPTED);
    // Every session open before the warm-up: opening them is not what is measured.
    const openSessions = () => metric(/rollcall_gateway_bus_sessions\{state="open"[^}]*\} (\d+)/);
    for (let i = 0; i < 600 && (await openSessions()) < devices.length; i++) await sleep(100);
    // A real device answers once a round, so each heartbeat moves it to a new round in the index: the
    // round advances every second, or nearly every heartbeat would repeat one already recorded.
    const stopRounds = announceRounds(keys);
    await sleep(SIZES.warmupMs);
    const a0 = await accepted();
    const t0 = performance.now();
    await sleep(SIZES.ingestSeconds * 1000);
    const end = await scrape();
    const rate = (read(end, ACCEPTED) - a0) / ((performance.now() - t0) / 1000);
    // The loop's longest delay since the scrape at t0.
    const longestTurnMs = read(end, /nodejs_eventloop_lag_max_seconds\{[^}]*\} ([\d.e+-]+)/) * 1000;
    stopRounds();
    await gateway.stop();
    return { rate, longestTurnMs };
  }

  /** Frames per second a bare receiver handles, on one socket or one per bus, from the same source. */
  async function bareRate(perBus: boolean, port: number, mode?: 'hash'): Promise<number> {
    const bare = runTs(
      'bench/bare-receiver.ts',
      {
        WARMUP_MS: String(SIZES.warmupMs / 2),
        DURATION_MS: String(SIZES.ingestSeconds * 1000),
        ...(perBus ? { TRACKS_FILE: tracksFile } : {}),
        ...(mode ? { MODE: mode } : {}),
      },
      { args: [`ws://127.0.0.1:${port}`] },
    );
    const line = await bare.waitLine((l) => l.startsWith('{'), 120_000);
    await bare.stop();
    return (JSON.parse(line) as { perSecond: number }).perSecond;
  }
  const tracksFile = join(dir, 'ingest-tracks.json');
  writeFileSync(tracksFile, JSON.stringify([...buses.values()]));

  const ownSource = await startSource(true);
  const own = await measure(true, ownSource.port);
  const ownCeiling = await bareRate(true, ownSource.port);
  await ownSource.source.stop();
  const sharedSource = await startSource(false);
  const shared = await measure(false, sharedSource.port);
  const ceiling = await bareRate(false, sharedSource.port);
  // A reference only: the full bench takes it.
  const decodeAndHash = quick ? NaN : await bareRate(false, sharedSource.port, 'hash');
  await sharedSource.source.stop();
  // The link meter's cost, A B A B: without it, with it.
  const plain: number[] = [];
  const metered: number[] = [];
  for (let i = 0; i < 2; i++) {
    plain.push(await recordingRate(db, devices, prefix));
    metered.push(await recordingRate(db, devices, prefix, true));
  }
  const mean = (xs: number[]) => Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);
  const recorded = mean(plain);
  const recordedWithLinks = mean(metered);
  await db.destroy();
  /** A ratio of two figures is only worth reading on a quiet machine. */
  const ratio = (name: string, rate: number, of: number) =>
    report({
      name,
      value: busyAtStart ? NaN : Math.round((rate / of) * 100) / 100,
      unit: 'ratio',
      target: '>= 0.5',
      met: busyAtStart ? null : rate / of >= 0.5,
      ...(busyAtStart
        ? { note: `not reported: load average ${loadAtStart.toFixed(2)} at start, above ${cores} cores` }
        : {}),
    });
  Object.assign(json, {
    heartbeatsPerSecondOwnBuses: Math.round(own.rate),
    ceilingPerSecondOwnBuses: ownCeiling,
    heartbeatsPerSecond: Math.round(shared.rate),
    longestTurnMsOwnBuses: Math.round(own.longestTurnMs),
    longestTurnMs: Math.round(shared.longestTurnMs),
    ceilingPerSecond: ceiling,
    decodeAndHashPerSecond: decodeAndHash,
    recordedPerSecond: recorded,
    recordedWithLinksPerSecond: recordedWithLinks,
  });
  report({
    name: 'heartbeats ingested per second, one socket per robot',
    value: Math.round(own.rate),
    unit: '/s',
    target: '>= 100000',
    met: own.rate >= 100_000,
    note: `${SIZES.ingestDevices.toLocaleString('en')} sessions in one gateway`,
  });
  report({
    name: '  ceiling: bare ws receive-and-parse, one socket per robot',
    value: ownCeiling,
    unit: '/s',
    target: '(reference)',
    met: null,
  });
  ratio('  ingestion / ceiling, one socket per robot', own.rate, ownCeiling);
  report({
    name: '  longest turn of the gateway loop, every session flooding',
    value: Math.round(own.longestTurnMs),
    unit: 'ms',
    target: '<= 250',
    met: own.longestTurnMs <= 250,
    note: 'lease renewals, rounds and the ops endpoint wait this long at most',
  });
  report({
    name: 'heartbeats ingested per second, shared bus (one socket)',
    value: Math.round(shared.rate),
    unit: '/s',
    target: '(reported)',
    met: null,
    note: 'the migration path: each token resolved to its device, then to its shard',
  });
  report({
    name: '  ceiling: bare ws receive-and-parse',
    value: ceiling,
    unit: '/s',
    target: '(reference)',
    met: null,
  });
  if (!quick)
    report({
      name: '  receive, decode and hash only (no Redis)',
      value: decodeAndHash,
      unit: '/s',
      target: '(reference)',
      met: null,
      note: `${Math.round((decodeAndHash / ceiling) * 100) / 100} of the ceiling`,
    });
  ratio('ingestion / ceiling', shared.rate, ceiling);
  report({
    name: 'heartbeats written to Redis per second, each new for its round',
    value: recorded,
    unit: '/s',
    target: '(reported)',
    met: null,
    note: 'in process, no sockets: the rate when no heartbeat repeats its round',
  });
  report({
    name: '  the same with the link meter (latency, misses, windows)',
    value: recordedWithLinks,
    unit: '/s',
    target: `>= ${Math.round(recorded * 0.95)} (95 %)`,
    met: busyAtStart ? null : recordedWithLinks >= recorded * 0.95,
    note: `${Math.round((recordedWithLinks / recorded) * 1000) / 10} % of the rate without it (A B A B, mean of 2 each)`,
  });
}

/**
 * Heartbeats the ingestion writes to Redis per second when none repeats a round already recorded
 * (each pass over the fleet is a new round): what one gateway records at most, whatever the sockets.
 */
/** Each pass of every measurement is a round of its own, later than any before. */
let recordingRound = 1000;

async function recordingRate(
  db: Db,
  devices: { id: string; token: string }[],
  prefix: string,
  withLinks = false,
) {
  const keys = redisKeys(prefix);
  const metrics = createMetrics('bench');
  // As the gateway wires it: each bus asked as its HEALTHCHECK goes, each first answer a sample.
  const meter = withLinks
    ? createLinkMeter({ observe: (v) => metrics.linkLatencySeconds.observe(v) })
    : undefined;
  const ingest = createHeartbeatIngest({
    liveness: createLiveness(redis, keys, SHARDS),
    metrics,
    logger: silent,
    openRound: () => recordingRound,
    lookupTokens: (hashes) => findDeviceIdsByTokenHashes(db, hashes),
    connect: (fresh) => meter?.reconnected(fresh.map((f) => f.deviceId)),
    ...(meter && {
      answered: (answers: readonly { deviceId: string; round: number; at: number }[]) =>
        meter.answered(answers),
    }),
  });
  const frames = devices.map((d) => frameOf(d.token));
  const ids = devices.map((d) => d.id);
  const pass = async () => {
    const round = ++recordingRound;
    // The gateway hands them out in 5 ms steps, one clock reading per step.
    if (meter) {
      const at = performance.now();
      for (const id of ids) meter.asked(id, round, at);
    }
    for (let i = 0; i < frames.length; i++) ingest.push(frames[i]!, ids[i]);
    await ingest.flush();
    // The gateway takes the figures every 10 s: every 10th round at the shortest interval (1 s).
    if (meter && round % 10 === 0) meter.written(meter.take());
  };
  const accepted = async () =>
    (await metrics.heartbeats.get()).values.find((v) => v.labels.result === 'accepted')?.value ?? 0;
  await pass();
  const a0 = await accepted();
  const t0 = performance.now();
  while (performance.now() - t0 < SIZES.ingestSeconds * 1000) await pass();
  const rate = ((await accepted()) - a0) / ((performance.now() - t0) / 1000);
  await ingest.close();
  return Math.round(rate);
}

// ---- 2. round evaluation ---------------------------------------------------------------------------
async function evaluation() {
  process.stdout.write(
    `\nround evaluation (${SIZES.seeded.toLocaleString('en')} connected devices seeded)\n`,
  );
  const { db } = await sectionDatabase('bench_evaluation');
  const prefix = 'be';
  const keys = redisKeys(prefix);
  const liveness = createLiveness(redis, keys, SHARDS);
  const rounds = createRounds(redis, keys, SHARDS);
  const allShards = Array.from({ length: SHARDS }, (_, i) => i);
  const queues = createQueues(bullConnection(redisServer.url, 'producer'), prefix);
  const settings = createSettingsService(db, async () => {});
  const n = 100;
  for (let r = 1; r <= n; r++) await rounds.close(r, allShards);
  await redis.hset(keys.rounds.meta(n), 'issuedAt', String(Date.now()), 'interval', '5');
  const filler = Array.from({ length: SIZES.seeded - SIZES.crossing }, () => randomUUID());
  const t0 = performance.now();
  await seedHeard(redis, keys, filler, n);
  const crossing = await insertDevices(db, SIZES.crossing, true, 'cross');
  // Their sessions began in round 1; they were last heard in round 96, so round 100 is miss 4 > max 3.
  await db.raw(
    `WITH s AS (INSERT INTO connection_sessions (id, device_id, started_round)
                SELECT gen_random_uuid(), id, 1 FROM devices WHERE name LIKE 'cross-%' RETURNING id, device_id)
     UPDATE devices d SET current_session_id = s.id, connected_round = 1, connected_at = now() FROM s WHERE d.id = s.device_id`,
  );
  await seedHeard(
    redis,
    keys,
    crossing.map((d) => d.id),
    96,
  );
  process.stdout.write(`  (seeded in ${Math.round((performance.now() - t0) / 1000)} s)\n`);

  // Wired as the worker role wires it: effects handed to dispatch jobs, which a dispatch worker in
  // the same process fans out to the effect queues.
  const dispatch = createDispatchEffects({
    enqueueEffects: (sessions) => queues.enqueueSessionEffects(sessions, { attempts: 3, backoffMs: 1000 }),
  });
  const dispatcher = new Worker(QUEUES.dispatchEffects, (job) => dispatch(job.data as DispatchEffectsData), {
    connection: bullConnection(redisServer.url, 'worker'),
    prefix,
    concurrency: Number(process.env.BENCH_DC ?? 4),
  });
  const evaluate = createEvaluateRound({
    db,
    liveness,
    busLosses: createBusLossStore(redis, keys, SHARDS),
    rounds,
    settings: () => settings.current(),
    connectDevices: createConnectDevices({ db, settings: () => settings.current() }),
    confirmRound: confirmByHand(rounds, keys),
    handOffEffects: (done) => queues.dispatchEffects(done),
    metrics: createMetrics('bench'),
    logger: silent,
    ...(process.env.BENCH_BATCH ? { batchSize: Number(process.env.BENCH_BATCH) } : {}),
  });
  const effectJobs = async () => {
    let total = 0;
    for (const q of queues.effects.values()) total += (await q.getJobCounts('waiting')).waiting ?? 0;
    return total;
  };

  // None missing: the devices crossing are set fresh for this part, then put back.
  await seedHeard(
    redis,
    keys,
    crossing.map((d) => d.id),
    n,
  );
  const quiet: number[] = [];
  for (let i = 0; i < 7; i++) {
    const s = performance.now();
    const r = await evaluate(n);
    quiet.push(performance.now() - s);
    if (r.disconnected !== 0) throw new Error('a quiet round disconnected someone');
  }
  const quietMs = Math.round(percentile(quiet.slice(2), 50) * 10) / 10;
  json.evaluationQuietMs = quietMs;
  report({
    name: `evaluation, none missing (median of 5)`,
    value: quietMs,
    unit: 'ms',
    target: '< 20 ms',
    met: quietMs < 20,
  });

  await seedHeard(
    redis,
    keys,
    crossing.map((d) => d.id),
    96,
  );
  const s = performance.now();
  const result = await evaluate(n);
  const busyMs = Math.round(performance.now() - s);
  while ((await effectJobs()) < SIZES.crossing * 3 && performance.now() - s < 60_000) await sleep(20);
  const enqueuedMs = Math.round(performance.now() - s);
  const [devicesDown, sessions, events, effects] = await Promise.all([
    db('devices')
      .where('name', 'like', 'cross-%')
      .where({ status: 'DISCONNECTED' })
      .count<{ n: string }[]>('* as n'),
    db('connection_sessions').where({ end_reason: 'MISSED_HEARTBEATS' }).count<{ n: string }[]>('* as n'),
    db('outbox').where({ type: 'DEVICE_DISCONNECTED' }).count<{ n: string }[]>('* as n'),
    db('effects').count<{ n: string }[]>('* as n'),
  ]);
  const written = [devicesDown, sessions, events, effects].map((x) => Number(x[0]!.n));
  const complete =
    result.disconnected === SIZES.crossing &&
    written[0] === SIZES.crossing &&
    written[1] === SIZES.crossing &&
    written[2] === SIZES.crossing &&
    written[3] === SIZES.crossing * 3;
  json.evaluationCrossingMs = busyMs;
  report({
    name: `evaluation, ${SIZES.crossing.toLocaleString('en')} crossing the threshold`,
    value: busyMs,
    unit: 'ms',
    target: '< 2000 ms',
    met: busyMs < 2000 && complete,
    note: `${written[0]} transitions, ${written[1]} sessions, ${written[2]} events, ${written[3]} effect rows`,
  });
  const jobs = await effectJobs();
  json.evaluationEffectJobsEnqueuedMs = enqueuedMs;
  report({
    name: `  then all ${(SIZES.crossing * 3).toLocaleString('en')} effect jobs in their queues`,
    value: enqueuedMs,
    unit: 'ms',
    target: '(reported)',
    met: null,
    note: `${jobs} jobs; from the start of the evaluation, fanned out by dispatch jobs`,
  });
  await evaluationWithPolicies(db, { evaluate: createEvaluateRound, queues, settings });
  await dispatcher.close();
  await queues.close();
  await db.destroy();
}

/**
 * Evaluation with thousands of distinct health-check policies: devices in groups whose policies all
 * differ (and some with their own), none missing, then all silent but within their own allowance
 * (judged, none disconnected), then all past it. In keys of its own, with 100,000 heard devices
 * besides, so the figures show what the policies cost, not the fleet.
 */
async function evaluationWithPolicies(
  db: Db,
  parts: {
    evaluate: typeof createEvaluateRound;
    queues: ReturnType<typeof createQueues>;
    settings: ReturnType<typeof createSettingsService>;
  },
) {
  const groups = quick ? 200 : 2000;
  const count = SIZES.crossing;
  const keys = redisKeys('bp');
  const liveness = createLiveness(redis, keys, SHARDS);
  const rounds = createRounds(redis, keys, SHARDS);
  const allShards = Array.from({ length: SHARDS }, (_, i) => i);
  // Group i: 3 + i % 98 misses, every (1 + i / 98)-th round: all distinct, up to 2,120 rounds allowed.
  await db.batchInsert(
    'device_groups',
    Array.from({ length: groups }, (_, i) => ({
      name: `g-${i}`,
      max_misses: 3 + (i % 98),
      interval_multiple: 1 + Math.floor(i / 98),
    })),
    1000,
  );
  const devices = await insertDevices(db, count, true, 'pol');
  await db.raw(
    `UPDATE devices SET group_name = 'g-' || (seq % ?),
       max_misses = CASE WHEN seq % 10 = 0 THEN 2 + seq % 50 END
     WHERE name LIKE 'pol-%'`,
    [groups],
  );
  await db.raw(
    `WITH s AS (INSERT INTO connection_sessions (id, device_id, started_round)
                SELECT gen_random_uuid(), id, 1 FROM devices WHERE name LIKE 'pol-%' RETURNING id, device_id)
     UPDATE devices d SET current_session_id = s.id, connected_round = 1, connected_at = now() FROM s WHERE d.id = s.device_id`,
  );
  // Each device's allowance by its effective policy (the server's misses are the default, 3).
  const allowance = await allowancesOf(
    db,
    devices.map((d) => d.id),
    (await parts.settings.current())['device.healthcheckMaxConsecutiveMisses'],
  );
  const distinct = new Set(allowance.values()).size;
  // Enough valid rounds behind n for the most lenient device to be silent past its allowance.
  const n = Math.max(...allowance.values()) + 80;
  for (let r = 1; r <= n; r++) await rounds.close(r, allShards);
  await redis.hset(keys.rounds.meta(n), 'issuedAt', String(Date.now()), 'interval', '5');
  await seedHeard(
    redis,
    keys,
    Array.from({ length: 100_000 }, () => randomUUID()),
    n,
  );
  const ids = devices.map((d) => d.id);
  const evaluate = parts.evaluate({
    db,
    liveness,
    busLosses: createBusLossStore(redis, keys, SHARDS),
    rounds,
    settings: () => parts.settings.current(),
    connectDevices: createConnectDevices({ db, settings: () => parts.settings.current() }),
    confirmRound: confirmByHand(rounds, keys),
    handOffEffects: (done) => parts.queues.dispatchEffects(done),
    metrics: createMetrics('bench-policies'),
    logger: silent,
  });
  const timed = async (heardIn: (id: string) => number, expect: number, name: string, target: string) => {
    await seedHeard(redis, keys, ids, heardIn);
    const times: number[] = [];
    for (let i = 0; i < (expect === 0 ? 5 : 1); i++) {
      const s = performance.now();
      const r = await evaluate(n);
      times.push(performance.now() - s);
      if (r.disconnected !== expect)
        throw new Error(`${name}: ${r.disconnected} disconnected, not ${expect}`);
    }
    const ms = Math.round(percentile(times, 50) * 10) / 10;
    report({ name, value: ms, unit: 'ms', target, met: ms < Number(target.replace(/[^0-9]/g, '')) });
    return ms;
  };
  const label = `${count.toLocaleString('en')} devices, ${groups.toLocaleString('en')} groups, ${distinct.toLocaleString('en')} distinct allowances`;
  json.evaluationPoliciesQuietMs = await timed(
    () => n,
    0,
    `evaluation with policies, none missing (${label})`,
    '< 20 ms',
  );
  json.evaluationPoliciesWithinMs = await timed(
    (id) => n - allowance.get(id)!,
    0,
    `  all ${count.toLocaleString('en')} silent, each within its own allowance (judged, none disconnected)`,
    '< 2000 ms',
  );
  json.evaluationPoliciesCrossingMs = await timed(
    (id) => n - allowance.get(id)! - 1,
    count,
    `  all ${count.toLocaleString('en')} past their own allowance`,
    '< 2000 ms',
  );
}

// ---- 3. registration --------------------------------------------------------------------------------
async function registration() {
  process.stdout.write('\nregistration (one web process, autocannon)\n');
  const web = runTs('workers/web.ts', {
    ...baseEnv,
    QUEUE_PREFIX: 'br',
    ADMIN_TOKEN: 'bench-admin-token-0123456789abcdef',
    MOTH_URL: 'ws://127.0.0.1:9',
    TGDM_URL: 'http://127.0.0.1:9',
    MANTIS_URL: 'http://127.0.0.1:9',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
  });
  const { port } = JSON.parse(await web.waitLine(jsonLine('web listening'))) as { port: number };
  let k = 0;
  // autocannon 9 takes `warmup`; its published types predate it.
  const options: autocannon.Options & { warmup: { connections: number; duration: number } } = {
    url: `http://127.0.0.1:${port}`,
    connections: 32,
    duration: SIZES.regSeconds,
    // Not measured: the first requests of a fresh process (JIT, pool connections, each connection
    // preparing the insert) are a start-up cost, not the service's latency.
    warmup: { connections: 32, duration: quick ? 1 : 2 },
    requests: [
      {
        method: 'POST',
        path: '/devices',
        headers: { 'content-type': 'application/json' },
        setupRequest: (req) => ({
          ...req,
          body: JSON.stringify({
            name: `reg-${process.pid}-${k++}`,
            secretKey: SECRET,
            tracks: [{ name: 'front', type: 'VIDEO' }],
            actions: ['PATROL'],
          }),
        }),
      },
    ],
  };
  const result = await autocannon(options);
  await web.stop();
  const rps = Math.round(result.requests.average);
  json.registrationPerSecond = rps;
  json.registrationP99Ms = result.latency.p99;
  report({
    name: 'registrations per second',
    value: rps,
    unit: '/s',
    target: '>= 1000',
    met: rps >= 1000,
    note: `${result.non2xx} non-2xx, ${result.errors} errors`,
  });
  report({
    name: 'registration latency p99',
    value: result.latency.p99,
    unit: 'ms',
    target: '< 50 ms',
    met: result.latency.p99 < 50,
  });
}

// ---- 4. detection -------------------------------------------------------------------------------------
const TIMING: Timing = {
  intervalMs: 1000,
  timeoutSeconds: 3,
  warmupMs: quick ? 1500 : 3000,
  silentOverMs: SIZES.silentOverMs,
  graceMs: quick ? 2000 : 4000,
};

const redisPidFile = () => join(dir, 'redis', 'redis.pid');
const postgresPidFile = () => join(dir, 'postgres', 'data', 'postmaster.pid');

/**
 * rollcall on the whole stack (hub, gateway, worker; robots answering within 10 ms on their own
 * buses): `silent` devices stop answering at random times in the silence window, and `fault` strikes
 * once, as in the peers' scenarios. Returns the outcome and how long each session's effects took.
 */
async function rollcallScenario(fault: Fault) {
  const name = `bench_detection_${fault.replace('-', '_')}`;
  // Its own database: the sweeper of this section's worker must not find other sections' effect rows.
  const { db, url } = await sectionDatabase(name);
  const prefix = `bd${fault.length}`;
  const hub = new ThreadedMothHub();
  const mothUrl = await hub.start();
  const tgdm = createTgdmSimulator();
  const mantis = createMantisSimulator();
  const config = {
    ...loadConfig({ QUEUE_PREFIX: prefix, LOG_LEVEL: 'silent' }),
    ...baseEnv,
    DATABASE_URL: url,
    MOTH_URL: mothUrl,
    TGDM_URL: await tgdm.start(),
    MANTIS_URL: await mantis.start(),
    ADMIN_TOKEN: 'bench-admin-token-0123456789abcdef',
  };
  await writeSettings(db, {
    'device.healthcheckIntervalSeconds': TIMING.intervalMs / 1000,
    'device.healthcheckMaxConsecutiveMisses': TIMING.timeoutSeconds - 1,
    'recording.automatic': false,
  });
  const devices = await insertDevices(db, SIZES.fleet, false, 'det');
  let worker = await startWorker(config, silent, { opsPort: null });
  let gateway = await startGateway(config, silent, { opsPort: null });

  const buses = await busesOf(db);
  const robots = devices.map(
    (d) =>
      new SimulatedDevice({
        mothUrl,
        channelPath: config.channels.deviceBus(buses.get(d.id)!),
        token: d.token,
        replyDelayMs: () => Math.random() * 10,
        keepReceived: false,
      }),
  );
  for (let i = 0; i < robots.length; i += 250)
    await Promise.all(robots.slice(i, i + 250).map((r) => r.connect()));
  const robotOf = new Map(devices.map((d, i) => [d.id, robots[i]!]));
  const connectedCount = async () =>
    Number((await db('devices').where({ status: 'CONNECTED' }).count<{ n: string }[]>('* as n'))[0]!.n);
  for (let i = 0; i < 60 && (await connectedCount()) < SIZES.fleet; i++) await sleep(500);

  // The same timeline as the peers': the warm-up is over once every device is connected.
  const t0 = Date.now() - TIMING.warmupMs;
  const victims = new Set(devices.slice(0, SIZES.silent).map((d) => d.id));
  for (const id of victims)
    setTimeout(() => (robotOf.get(id)!.silent = true), Math.random() * TIMING.silentOverMs);
  await sleep(faultAt(TIMING) - TIMING.warmupMs);
  const length = FAULT_MS[fault];
  if (fault === 'detector-restart') {
    await worker.stop();
    await sleep(length);
    worker = await startWorker(config, silent, { opsPort: null });
  } else if (fault === 'store-stall') {
    await stallProcess(redisPidFile(), length);
  } else if (fault === 'service-restart') {
    await Promise.all([gateway.stop(), worker.stop()]);
    await sleep(length);
    [worker, gateway] = await Promise.all([
      startWorker(config, silent, { opsPort: null }),
      startGateway(config, silent, { opsPort: null }),
    ]);
  }
  await sleep(scenarioMs(TIMING, fault) - (Date.now() - t0));
  await sleep(quick ? 1500 : 2500); // effects
  const rows: { id: string; device_id: string; ended_at: Date }[] = await db('connection_sessions')
    .whereNotNull('ended_at')
    .select('id', 'device_id', 'ended_at');
  const effects: { session_id: string; done_at: Date | null }[] = await db('effects')
    .whereIn(
      'session_id',
      rows.map((r) => r.id),
    )
    .select('session_id', 'done_at');
  const decisions: Decisions = new Map();
  for (const r of rows) decide(decisions, r.device_id, +r.ended_at);
  const lastSent = new Map(devices.map((d) => [d.id, robotOf.get(d.id)!.lastHeartbeatAt ?? NaN]));
  const outcome = judge(decisions, lastSent, victims);
  const endedAt = new Map(rows.map((r) => [r.id, +r.ended_at]));
  const effectDelays = effects.map((e) =>
    e.done_at ? (+e.done_at - endedAt.get(e.session_id)!) / 1000 : Infinity,
  );
  await Promise.all(robots.map((r) => r.close()));
  await gateway.stop();
  await worker.stop();
  await hub.stop();
  await tgdm.stop();
  await mantis.stop();
  await db.destroy();
  return { outcome, effectDelays, effectsComplete: effects.length === rows.length * 3 };
}

async function detection() {
  process.stdout.write(
    `\ndetection (interval 1 s, max misses 2, ${SIZES.fleet} devices, ${SIZES.silent} fall silent)\n`,
  );
  // The peers run beside it on the same timeline: they are light, and no fault strikes here.
  const [{ outcome, effectDelays, effectsComplete }] = await Promise.all([
    rollcallScenario('none'),
    peersThrough('none'),
  ]);
  const { delays, falseDisconnects } = outcome;
  const early = delays.filter((d) => d < 3).length;
  const late = delays.filter((d) => d > 4.5).length;
  json.detection = {
    disconnected: delays.length,
    minSeconds: Math.min(...delays),
    maxSeconds: Math.max(...delays),
    early,
    late,
    wrong: falseDisconnects,
  };
  peerOutcomes.set('rollcall none', outcome);
  report({
    name: 'silent devices disconnected',
    value: delays.length,
    unit: `of ${SIZES.silent}`,
    target: `${SIZES.silent}`,
    met: delays.length === SIZES.silent,
  });
  report({
    name: 'last heartbeat -> decision, min',
    value: Math.round(Math.min(...delays) * 100) / 100,
    unit: 's',
    target: '>= 3.0 s',
    met: early === 0,
  });
  report({
    name: 'last heartbeat -> decision, max',
    value: Math.round(Math.max(...delays) * 100) / 100,
    unit: 's',
    target: '<= 4.5 s',
    met: late === 0,
  });
  report({
    name: 'decision -> effects done, max',
    value: Math.round(Math.max(...effectDelays) * 100) / 100,
    unit: 's',
    target: '<= 2 s',
    met: effectDelays.every((d) => d <= 2) && effectsComplete,
  });
  report({
    name: 'answering devices disconnected',
    value: falseDisconnects,
    unit: '',
    target: '0',
    met: falseDisconnects === 0,
  });
}

// ---- 7. peers: what a team builds instead ---------------------------------------------------------
const peerOutcomes = new Map<string, Outcome>();
const SYSTEMS = ['rollcall', 'redis-ttl', 'pg-last-seen'] as const;

/** The peers' database and fleet, made once for the detection section and this one. */
let peersSetup: Promise<Awaited<ReturnType<typeof setUpPeers>>> | undefined;
async function setUpPeers() {
  const { db } = await sectionDatabase('bench_peers');
  const fleet = Array.from({ length: SIZES.fleet }, () => ({ id: randomUUID(), token: newToken() }));
  const ttl = (decisions: Decisions, deviceOf: Map<string, string>, tag: string) =>
    startRedisTtlPeer({
      redisUrl: redisServer.url,
      prefix: `peer:${tag}:`,
      timeoutSeconds: 3,
      deviceOf,
      decisions,
    });
  const pg = async (decisions: Decisions, deviceOf: Map<string, string>, tag: string) => {
    const table = `last_seen_${tag.replace(/-/g, '_')}`;
    await createPgLastSeenTable(db, table, [...deviceOf.values()]);
    return startPgLastSeenPeer({ db, table, timeoutSeconds: 3, intervalMs: 1000, deviceOf, decisions });
  };
  return {
    db,
    start: { 'redis-ttl': ttl, 'pg-last-seen': pg },
    deviceOf: new Map(fleet.map((d) => [tokenHash(d.token), d.id])),
    silent: new Set(fleet.slice(0, SIZES.silent).map((d) => d.id)),
    pushFleet: fleet.map((d) => ({ id: d.id, frame: frameOf(d.token) })),
  };
}
const frameOf = (token: string) => Buffer.from(JSON.stringify({ type: 'HEARTBEAT', token }));

/** Both peers through one fault, side by side: each stalls only its own store, neither loads the machine. */
async function peersThrough(fault: Fault): Promise<void> {
  const setup = await (peersSetup ??= setUpPeers());
  await Promise.all(
    (['redis-ttl', 'pg-last-seen'] as const).map(async (system) => {
      const decisions: Decisions = new Map();
      const peer = await setup.start[system](decisions, setup.deviceOf, fault);
      const stallOf = system === 'redis-ttl' ? redisPidFile() : postgresPidFile();
      const outcome = await runPeerScenario({
        peer,
        decisions,
        fleet: setup.pushFleet,
        silent: setup.silent,
        fault,
        timing: TIMING,
        stall: (ms) => stallProcess(stallOf, ms),
      });
      await peer.close();
      peerOutcomes.set(`${system} ${fault}`, outcome);
    }),
  );
}

async function peers() {
  const faults: Fault[] = quick ? ['none'] : ['none', 'detector-restart', 'store-stall', 'service-restart'];
  process.stdout.write(
    `\npeers (${SIZES.fleet} devices, ${SIZES.silent} fall silent; interval 1 s, timeout 3 s; faults: ${faults.join(', ')})\n`,
  );
  const setup = await (peersSetup ??= setUpPeers());

  // Heartbeats per second, in process for all three: each heartbeat authenticated and written.
  const many = await insertDevices(setup.db, SIZES.ingestDevices, true, 'peer-ingest');
  const liveness = createLiveness(redis, redisKeys('bp'), SHARDS);
  for (let i = 0; i < many.length; i += 10_000)
    await liveness.cacheTokens(
      many.slice(i, i + 10_000).map((d) => ({ tokenHash: tokenHash(d.token), deviceId: d.id })),
    );
  const rates: Record<string, number> = { rollcall: await recordingRate(setup.db, many, 'bp') };
  const deviceOfMany = new Map(many.map((d) => [tokenHash(d.token), d.id]));
  const frames = many.map((d) => frameOf(d.token));
  for (const system of ['redis-ttl', 'pg-last-seen'] as const) {
    const peer = await setup.start[system](new Map(), deviceOfMany, 'ingest');
    rates[system] = await ingestRate(peer, frames, SIZES.ingestSeconds * 1000);
    await peer.close();
  }
  // Their keys would expire during the scenarios, and slow the expiry the redis-ttl peer waits for.
  for (let cursor = '0'; ;) {
    const [next, keys] = await redis.scan(cursor, 'MATCH', 'peer:ingest:*', 'COUNT', 1000);
    if (keys.length > 0) await redis.unlink(...keys);
    if ((cursor = next) === '0') break;
  }

  // Detection through each fault, on the same fleet and timeline (no fault: from the detection section).
  for (const fault of faults) {
    if (!peerOutcomes.has(`rollcall ${fault}`))
      peerOutcomes.set(`rollcall ${fault}`, (await rollcallScenario(fault)).outcome);
    if (!peerOutcomes.has(`redis-ttl ${fault}`)) await peersThrough(fault);
  }
  await setup.db.destroy();
  printPeers(faults, rates);
}

function printPeers(faults: Fault[], rates: Record<string, number>) {
  const cell = (v: number | string, w = 9) => String(v).padStart(w);
  const round2 = (v: number) => (Number.isFinite(v) ? Math.round(v * 100) / 100 : '-');
  process.stdout.write(
    `  ${'system'.padEnd(13)}${cell('hb/s', 10)}${cell('x rollcall', 11)}\n` +
      SYSTEMS.map(
        (s) => `  ${s.padEnd(13)}${cell(rates[s]!, 10)}${cell(round2(rates[s]! / rates.rollcall!), 11)}\n`,
      ).join(''),
  );
  process.stdout.write(
    `\n  ${'fault'.padEnd(18)}${'system'.padEnd(13)}${cell('min s')}${cell('p50 s')}${cell('p99 s')}${cell('max s')}${cell('false')}${cell('missed')}${cell('p99 x rc', 10)}  (missed: none by ${TIMING.graceMs / 1000} s after the timeout)\n`,
  );
  const table: Record<string, unknown>[] = [];
  for (const fault of faults)
    for (const system of SYSTEMS) {
      const o = peerOutcomes.get(`${system} ${fault}`)!;
      const d = o.delays;
      const p99 = percentile(d, 99);
      const rollcallP99 = percentile(peerOutcomes.get(`rollcall ${fault}`)!.delays, 99);
      const row = {
        fault,
        system,
        minSeconds: round2(Math.min(...d)),
        p50Seconds: round2(percentile(d, 50)),
        p99Seconds: round2(p99),
        maxSeconds: round2(Math.max(...d)),
        falseDisconnects: o.falseDisconnects,
        missedDisconnects: o.missed,
        p99VersusRollcall: round2(p99 / rollcallP99),
      };
      table.push(row);
      process.stdout.write(
        `  ${fault.padEnd(18)}${system.padEnd(13)}${cell(row.minSeconds)}${cell(row.p50Seconds)}${cell(row.p99Seconds)}${cell(row.maxSeconds)}${cell(o.falseDisconnects)}${cell(o.missed)}${cell(row.p99VersusRollcall, 10)}\n`,
      );
    }
  json.peers = { heartbeatsPerSecond: rates, detection: table };
  for (const fault of faults) {
    const o = peerOutcomes.get(`rollcall ${fault}`)!;
    report({
      name: `rollcall through ${fault}: false / missed disconnects`,
      value: o.falseDisconnects + o.missed,
      unit: '',
      target: '0',
      met: o.falseDisconnects + o.missed === 0,
    });
  }
}

// ---- 5. memory ------------------------------------------------------------------------------------------
async function memory() {
  process.stdout.write(
    `\nmemory per 100,000 known devices (${SIZES.memDevices.toLocaleString('en')} measured)\n`,
  );
  const gc = (globalThis as { gc?: () => void }).gc;
  const prefix = 'bm';
  const keys = redisKeys(prefix);
  const liveness = createLiveness(redis, keys, SHARDS);
  // The devices are known (their tokens in the cache, as after a first round); the inputs are kept as
  // frames (Buffers, outside the heap) so the heap difference is what ingestion itself retains.
  let devices = Array.from({ length: SIZES.memDevices }, () => ({ id: randomUUID(), token: newToken() }));
  const frames = devices.map((d) => frameOf(d.token));
  const ids = devices.map((d) => d.id);
  const usedRedis = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
  const redisBefore = await usedRedis();
  for (let i = 0; i < devices.length; i += 10_000) {
    await liveness.cacheTokens(
      devices.slice(i, i + 10_000).map((d) => ({ tokenHash: tokenHash(d.token), deviceId: d.id })),
    );
  }
  devices = [];
  await redis.set(keys.rounds.counter, 1);
  const ingest = createHeartbeatIngest({
    liveness,
    metrics: createMetrics('bench-mem'),
    logger: silent,
    openRound: () => 1,
    lookupTokens: async () => [],
    connect: () => {},
  });
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      gc?.();
      await sleep(50);
    }
  };
  await settle();
  const heapBefore = process.memoryUsage().heapUsed;
  for (let i = 0; i < frames.length; i += 1000) {
    for (let k = i; k < Math.min(i + 1000, frames.length); k++) ingest.push(frames[k]!, ids[k]);
    await ingest.flush();
  }
  await ingest.close();
  await settle();
  if (frames.length !== SIZES.memDevices) throw new Error('unreachable');
  const heapPer100k = ((process.memoryUsage().heapUsed - heapBefore) / SIZES.memDevices) * 100_000;
  const redisPer100k = (((await usedRedis()) - redisBefore) / SIZES.memDevices) * 100_000;
  json.gatewayHeapBytesPer100kDevices = Math.round(heapPer100k);
  json.redisBytesPer100kDevices = Math.round(redisPer100k);
  report({
    name: 'gateway heap per 100k known devices',
    value: Math.round((heapPer100k / 1024 / 1024) * 10) / 10,
    unit: 'MiB',
    target: '(reported)',
    met: null,
    note: gc ? 'after GC' : 'run with --expose-gc for a GC before each reading',
  });
  report({
    name: 'Redis memory per 100k devices (token cache, index, last seen)',
    value: Math.round((redisPer100k / 1024 / 1024) * 10) / 10,
    unit: 'MiB',
    target: '(reported)',
    met: null,
  });
}

// ---- 6. device buses through 1, 2 and 4 gateways -----------------------------------------------------
async function gatewaysScaling() {
  const INTERVAL = quick ? 1 : 2;
  const fleetSize = SIZES.busFleet;
  process.stdout.write(
    `\ndevice buses (${fleetSize.toLocaleString('en')} robots, one socket each, answering within 10 ms; interval ${INTERVAL} s, max misses 2; ${SIZES.busRounds} rounds per run)\n`,
  );
  const { db, url } = await sectionDatabase('bench_gateways');
  const prefix = 'bg';
  const keys = redisKeys(prefix);
  await writeSettings(db, {
    'device.healthcheckIntervalSeconds': INTERVAL,
    'device.healthcheckMaxConsecutiveMisses': 2,
    'recording.automatic': false,
  });
  const devices = await insertDevices(db, fleetSize, false, 'gw');
  const buses = await busesOf(db);
  const hub = runTs('bench/hub.ts', {});
  const mothUrl = await hub.waitLine((l) => l.startsWith('ws://'));
  const config = {
    ...loadConfig({ QUEUE_PREFIX: prefix, LOG_LEVEL: 'silent', MOTH_SHARED_BUS: 'false' }),
    ...baseEnv,
    DATABASE_URL: url,
    MOTH_URL: mothUrl,
    ADMIN_TOKEN: 'bench-admin-token-0123456789abcdef',
  };
  const tgdm = createTgdmSimulator();
  const mantis = createMantisSimulator();
  const worker = await startWorker(
    { ...config, TGDM_URL: await tgdm.start(), MANTIS_URL: await mantis.start() },
    silent,
    { opsPort: null },
  );
  const fleetFile = join(dir, 'bus-fleet.json');
  writeFileSync(
    fleetFile,
    JSON.stringify(
      devices.map((d) => ({ token: d.token, path: config.channels.deviceBus(buses.get(d.id)!) })),
    ),
  );
  const robots = runTs('bench/robots.ts', {
    FLEET_FILE: fleetFile,
    MOTH_URL: mothUrl,
    ANSWER_WITHIN_MS: '10',
  });
  await robots.waitLine((l) => l === 'ready', 180_000);
  const robotStats = () => {
    const last = [...robots.lines].reverse().find((l) => l.startsWith('{'));
    return last ? (JSON.parse(last) as { sent: number; foreign: number }) : { sent: 0, foreign: 0 };
  };
  const totalCommands = async () => {
    let calls = 0;
    for (const m of (await redis.info('commandstats')).matchAll(/calls=(\d+)/g)) calls += Number(m[1]);
    return calls;
  };
  const count = async (q: Knex.QueryBuilder) => Number((await q.count<{ n: string }[]>('* as n'))[0]!.n);
  const disconnects = () => count(db('outbox').where({ type: 'DEVICE_DISCONNECTED' }));
  const leases = createShardLeases(redis, keys);

  const runs: Record<string, unknown>[] = [];
  // The quick bench runs the two ends only: the ratio compares them.
  for (const n of quick ? [1, 4] : [1, 2, 4]) {
    const gateways = Array.from({ length: n }, () =>
      runTs('workers/gateway.ts', {
        ...baseEnv,
        DATABASE_URL: url,
        MOTH_URL: mothUrl,
        MOTH_SHARED_BUS: 'false',
        QUEUE_PREFIX: prefix,
        OPS_PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
      }),
    );
    const ops = await Promise.all(
      gateways.map(
        async (g) =>
          (JSON.parse(await g.waitLine(jsonLine('gateway started'), 120_000)) as { opsPort: number }).opsPort,
      ),
    );
    const metric = async (name: string, label = '') => {
      let sum = 0;
      for (const port of ops) {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        const line = text.split('\n').find((l) => l.startsWith(name) && l.includes(label));
        sum += Number(line?.split(' ').at(-1) ?? 0);
      }
      return sum;
    };
    const held = async () => {
      const all = await leases.all();
      const owners = new Set<string>();
      for (let shard = 0; shard < SHARDS; shard++) {
        const h = all.get(shard);
        if (!h || h.since === null || h.expires < Date.now()) return false;
        owners.add(h.owner);
      }
      return owners.size === n;
    };
    /**
     * Waits for 0.8 of the current round, when every heartbeat of it has come and been counted (the
     * spread is 0.5 s, the robots report every 250 ms): both ends of the window see whole rounds.
     */
    const quietPhase = async () => {
      const round = Number(await redis.get(keys.rounds.counter));
      const issuedAt = Number(await redis.hget(keys.rounds.meta(round), 'issuedAt'));
      let at = issuedAt + 0.8 * INTERVAL * 1000;
      while (at < Date.now()) at += INTERVAL * 1000;
      await sleep(at - Date.now());
    };
    const t = performance.now();
    while (!(await held()) && performance.now() - t < 120_000) await sleep(250);
    const takeMs = Math.round(performance.now() - t);
    const connected = () => count(db('devices').where({ status: 'CONNECTED' }));
    while ((await connected()) < fleetSize && performance.now() - t < 120_000) await sleep(500);
    await sleep((quick ? 1 : 2) * INTERVAL * 1000);
    await quietPhase();
    const [d0, c0, a0, s0] = [
      await disconnects(),
      await totalCommands(),
      await metric('rollcall_heartbeats_total', 'accepted'),
      robotStats().sent,
    ];
    const t0 = performance.now();
    await sleep(SIZES.busRounds * INTERVAL * 1000 - 200);
    await quietPhase();
    const [d1, c1, a1, s1] = [
      await disconnects(),
      await totalCommands(),
      await metric('rollcall_heartbeats_total', 'accepted'),
      robotStats().sent,
    ];
    const seconds = (performance.now() - t0) / 1000;
    const rss = await metric('process_resident_memory_bytes');
    const sessions = await metric('rollcall_gateway_bus_sessions', 'state="open"');
    runs.push({
      gateways: n,
      heldAllShardsAfterMs: takeMs,
      heartbeatsRecordedPerSecond: Math.round((a1 - a0) / seconds),
      heartbeatsSentPerSecond: Math.round((s1 - s0) / seconds),
      redisCommandsPerHeartbeat: Math.round(((c1 - c0) / Math.max(1, a1 - a0)) * 100) / 100,
      gatewayRssBytes: Math.round(rss / n),
      sessionsPerGateway: Math.round(sessions / n),
      falseDisconnects: d1 - d0,
      connected: await connected(),
    });
    await Promise.all(gateways.map((g) => g.stop()));
  }
  json.deviceBuses = {
    robots: fleetSize,
    intervalSeconds: INTERVAL,
    rounds: SIZES.busRounds,
    runs,
    foreignTokensSeen: robotStats().foreign,
  };
  for (const r of runs) {
    const g = r.gateways as number;
    report({
      name: `${g} gateway${g > 1 ? 's' : ''}: heartbeats recorded per second`,
      value: r.heartbeatsRecordedPerSecond as number,
      unit: '/s',
      // Both counts are read at the same instants, the robots' to within their 250 ms report.
      target: '= sent (3 %)',
      met:
        Math.abs((r.heartbeatsRecordedPerSecond as number) - (r.heartbeatsSentPerSecond as number)) <=
        0.03 * (r.heartbeatsSentPerSecond as number),
      note: `robots sent ${String(r.heartbeatsSentPerSecond)}/s; all shards held ${String(r.heldAllShardsAfterMs)} ms after start`,
    });
    report({
      name: `  Redis commands per heartbeat`,
      value: r.redisCommandsPerHeartbeat as number,
      unit: '',
      target: 'same for 1 and 4',
      met: null,
    });
    report({
      name: `  false disconnects over ${SIZES.busRounds} rounds`,
      value: r.falseDisconnects as number,
      unit: '',
      target: '0',
      met: r.falseDisconnects === 0 && r.connected === fleetSize,
    });
  }
  const per = (g: number) => runs.find((r) => r.gateways === g)!.redisCommandsPerHeartbeat as number;
  report({
    name: 'Redis commands per heartbeat, 4 gateways / 1',
    value: Math.round((per(4) / per(1)) * 100) / 100,
    unit: 'ratio',
    target: '<= 1.1',
    met: per(4) / per(1) <= 1.1,
  });
  // A gateway's memory against the sessions it holds, from the 1- and 4-gateway runs: the slope is
  // what sessions cost, without the Node.js baseline every process has.
  const [one, four] = [runs[0]!, runs.at(-1)!];
  const perSession =
    ((one.gatewayRssBytes as number) - (four.gatewayRssBytes as number)) /
    Math.max(1, (one.sessionsPerGateway as number) - (four.sessionsPerGateway as number));
  json.deviceBusesGatewayBytesPer10kSessions = Math.round(perSession * 10_000);
  report({
    name: 'gateway memory per 10,000 sessions',
    value: Math.round(((perSession * 10_000) / 1024 / 1024) * 10) / 10,
    unit: 'MiB',
    target: '(reported)',
    met: null,
    note: `RSS ${Math.round((one.gatewayRssBytes as number) / 1024 / 1024)} MiB holding ${String(one.sessionsPerGateway)} sessions, ${Math.round((four.gatewayRssBytes as number) / 1024 / 1024)} MiB holding ${String(four.sessionsPerGateway)}`,
  });
  report({
    name: 'foreign tokens read by any robot',
    value: robotStats().foreign,
    unit: '',
    target: '0',
    met: robotStats().foreign === 0,
  });
  await robots.stop();
  await worker.stop();
  await hub.stop();
  await tgdm.stop();
  await mantis.stop();
  await db.destroy();
}

// Memory first: its heap readings are cleanest before the other sections have run.
const sections: [string, () => Promise<void>][] = [
  ['memory', memory],
  ['ingestion', ingestion],
  ['evaluation', evaluation],
  ['registration', registration],
  ['detection', detection],
  ['gateways', gatewaysScaling],
  ['peers', peers],
  [
    'storm',
    () =>
      storm({
        robots: SIZES.busFleet,
        dir,
        baseEnv,
        sectionDatabase,
        insertDevices,
        busesOf,
        report,
        json,
      }),
  ],
];
const startedAt = performance.now();
process.stdout.write(
  `rollcall bench${quick ? ' (quick)' : ''} on ${cores} cores, Node ${process.version}, load average ${loadAtStart.toFixed(2)} at start${busyAtStart ? ' (busier than its cores: no ratio will be reported)' : ''}\n`,
);
let failed = false;
try {
  for (const [name, run] of sections) {
    if (only && !only.includes(name)) continue;
    const sectionStart = performance.now();
    try {
      await run();
      process.stdout.write(`  (${name}: ${Math.round((performance.now() - sectionStart) / 1000)} s)\n`);
    } catch (err) {
      failed = true;
      // A network error's cause (a reset, a refusal) is what tells what failed.
      const cause = (err as { cause?: unknown }).cause;
      const why = cause instanceof Error ? ` (cause: ${cause.stack ?? cause.message})` : '';
      process.stdout.write(`  ${name} failed: ${(err as Error).stack ?? String(err)}${why}\n`);
    }
  }
} finally {
  await stopChildren();
  redis.disconnect();
  await db.destroy();
  await redisServer.stop();
  await pg.stop();
  rmSync(dir, { recursive: true, force: true });
}
json.figures = figures;
json.seconds = Math.round((performance.now() - startedAt) / 1000);
(json.machine as Record<string, unknown>).loadAverageAtEnd = Math.round(loadavg()[0]! * 100) / 100;
const missed = figures.filter((f) => f.met === false).map((f) => f.name);
process.stdout.write(
  `\n${figures.length} figures in ${String(json.seconds)} s on ${cores} cores (load average ${loadAtStart.toFixed(2)} at start, ${loadavg()[0]!.toFixed(2)} at end); targets missed: ${missed.length ? missed.join('; ') : 'none'}\n`,
);
if (args.out) writeFileSync(args.out, JSON.stringify(json, null, 2));
process.exit(failed ? 1 : 0);
