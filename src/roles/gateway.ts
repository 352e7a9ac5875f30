import { Worker } from 'bullmq';
import { connectDevice, flapPolicy } from '../db/transitions';
import { createEventSigner } from '../db/signing-keys';
import {
  findDeviceIdsByTokenHashes,
  findTokenHashesOfDevices,
  listDeviceBuses,
  markHeardOnBus,
  markProofsOnly,
  markTokenExposed,
} from '../db/devices';
import { republishRecent } from '../db/outbox';
import { intervalMultiples } from '../db/policies';
import { restingAt } from '../domain/policy';
import type { PlatformEvent } from '../domain/events';
import { shardsOwnedBy } from '../domain/shards';
import { createDeviceBuses } from '../gateway/device-buses';
import { createGoodbyes } from '../gateway/goodbyes';
import { createHeartbeatIngest } from '../gateway/heartbeat-ingest';
import { createOutboxPublisher } from '../gateway/outbox-publisher';
import { followRevocations } from '../gateway/revocations';
import { createLivenessRecovery } from '../gateway/recover-liveness';
import type { Logger } from '../logger';
import { createMetrics } from '../metrics';
import { MothClient } from '../moth/client';
import { healthcheck, type HealthcheckMessage } from '../moth/codec';
import { QUEUES } from '../queues/names';
import { createRedis } from '../redis/connection';
import { createGatewayRegistry, createRounds } from '../redis/rounds';
import { createShardLeases, SHARED_BUS } from '../redis/shard-leases';
import { createIssueRound } from '../../jobs/issue-round';
import type { Role } from './role';
import { createServices, replicaId, startRoleOps, type BackedConfig, type OpsOptions } from './services';

export type GatewayConfig = BackedConfig & { MOTH_URL: string };

/** Leases are renewed this often; one not renewed for three periods is taken over. */
const LEASE_PERIOD_MS = 1000;
/** New devices are picked up this often; the whole directory is re-read every DIRECTORY_FULL_MS. */
const DIRECTORY_PERIOD_MS = 1000;
const DIRECTORY_FULL_MS = 15_000;
const DIRECTORY_PAGE = 10_000;
const SCHEDULER_CHECK_TICKS = 3;
/** Events sent this long before a Moth session dropped are sent again. */
const REPUBLISH_WINDOW_SECONDS = 3;

/**
 * The `gateway` role. Live gateways divide the device shards between them through leases in Redis;
 * each holds one Moth session per device bus of its shards, sends each round's HEALTHCHECK on them
 * (across a short spread), ingests the HEARTBEATs they carry (each recorded once, by the shard's
 * owner), and sends task commands to one device's bus. Any gateway issues rounds and publishes the
 * outbox. Run 1..n: a gateway joining, leaving or killed moves only its shards, whose rounds are void
 * while the handover lasts.
 */
export async function startGateway(config: GatewayConfig, logger: Logger, options: OpsOptions = {}) {
  const id = replicaId('gateway');
  const log = logger.child({ gateway: id });
  const services = createServices(config, 'gateway');
  try {
    await services.checkShardCount();
  } catch (err) {
    await services.close();
    throw err;
  }
  const { db, redis, keys, liveness, settings } = services;
  const metrics = options.metrics ?? createMetrics('gateway', true);
  const shards = config.SHARDS;
  const rounds = createRounds(redis, keys, shards);
  const gateways = createGatewayRegistry(redis, keys);
  const leases = createShardLeases(redis, keys, 3 * LEASE_PERIOD_MS);
  const moth = {
    url: config.MOTH_URL,
    frameGapMs: config.MOTH_FRAME_GAP_MS,
    pingSeconds: config.MOTH_PING_SECONDS,
    logger: log,
  };
  // Each channel with its own key: a client of the events cannot join a robot's bus, nor the reverse.
  const clientChannel = new MothClient({
    ...moth,
    key: config.channels.clientKey,
    path: config.channels.clientEvents,
  });

  /** When recording heartbeats last failed: no shard counts as heard before then. */
  let brokenAt = 0;
  /** The round this gateway opened last on its shards: heartbeats count for it. */
  let openRound = 0;
  /** The nonces of the last rounds opened (a proof that waited for its key may be of the one before). */
  const nonces = new Map<number, string>();
  let stopping = false;

  const ingest = createHeartbeatIngest({
    liveness,
    metrics,
    logger: log,
    openRound: () => openRound,
    roundNonce: (round) => nonces.get(round),
    lookupKeys: (deviceIds) => findTokenHashesOfDevices(db, deviceIds),
    goodbye: (message, deviceId) => void goodbyes(message, deviceId),
    tokenExposed: (deviceIds) => {
      markTokenExposed(db, deviceIds).catch((err: Error) =>
        log.warn({ err: err.message }, 'could not record tokens sent in text frames'),
      );
    },
    requireProofs: (entries) => {
      // Postgres first, so the mark survives Redis; until both are written, the next proof asks again.
      markProofsOnly(
        db,
        entries.map((e) => e.deviceId),
      )
        .then(() => liveness.requireProofs(entries))
        .catch((err: Error) => log.warn({ err: err.message }, 'could not record devices taking proofs only'));
    },
    onWriteFailure: () => (brokenAt = Date.now()),
    onBackpressure: (behind) => (behind ? buses.pause() : buses.resume()),
    lookupTokens: (hashes) => findDeviceIdsByTokenHashes(db, hashes),
    heardOn: (deviceIds, bus) => {
      const changed = deviceIds.filter((d) => {
        const entry = buses.directory.get(d);
        if (!entry || entry.heardOnBus === bus) return false;
        entry.heardOnBus = bus;
        return true;
      });
      markHeardOnBus(db, changed, bus).catch((err: Error) =>
        log.warn({ err: err.message }, 'could not record which bus devices use'),
      );
    },
    connect: async (deviceId, round) => {
      const current = await settings.current();
      const connected = await connectDevice(db, deviceId, round, {
        automaticRecording: current['recording.automatic'],
        flap: flapPolicy(current),
      });
      if (!connected) return false;
      await services.enqueueEffects([connected]);
      publisher.nudge();
      return true;
    },
  });

  const goodbyes = createGoodbyes({
    db,
    metrics,
    logger: log,
    openRound: () => openRound,
    roundNonce: (round) => nonces.get(round),
    forget: async (deviceId) => {
      ingest.forgetDevice(deviceId);
      await liveness.forgetDevice(deviceId);
    },
    disconnected: async (ended) => {
      await services.enqueueEffects(ended);
      publisher.nudge();
    },
  });

  const buses = createDeviceBuses({
    shards,
    busPath: config.channels.deviceBus,
    sharedBusPath: config.MOTH_SHARED_BUS ? config.channels.sharedDeviceBus : undefined,
    moth: { ...moth, key: config.channels.deviceKey },
    onFrame: (data, deviceId, text) => ingest.push(data, deviceId, text),
    onSessionLost: () => void renewLeases(),
  });

  const signer = createEventSigner(db);
  const publisher = createOutboxPublisher({
    db,
    metrics,
    logger: log,
    send: (channel, body) => (channel === 'client' ? clientChannel.send(body) : sendToDevice(body)),
    sign: (event) => signer.sign(event),
  });

  /** A command for one robot goes to its bus only (and the shared one while it is still heard there). */
  async function sendToDevice(body: unknown): Promise<void> {
    const { deviceId } = body as PlatformEvent;
    if (!deviceId) return;
    if (!buses.directory.has(deviceId)) await syncDirectory(true);
    // A device deleted since: nobody is left to tell.
    if (!buses.directory.has(deviceId)) return;
    await buses.sendToDevice(deviceId, body);
  }
  // What was written to a session just before it dropped may not have been relayed: send it again.
  clientChannel.on('close', () => {
    republishRecent(db, 'client', REPUBLISH_WINDOW_SECONDS).catch((err: Error) =>
      log.warn({ err: err.message }, 'could not mark recent events for re-sending'),
    );
  });

  // The directory of every live device's bus: new devices every second, everything now and then.
  let lastSeq = 0;
  let lastFull = 0;
  let syncing: Promise<void> | undefined;
  async function syncDirectory(full = false): Promise<void> {
    if (syncing) return syncing;
    syncing = (async () => {
      const whole = full || Date.now() - lastFull >= DIRECTORY_FULL_MS;
      const from = whole ? 0 : lastSeq;
      const entries: Awaited<ReturnType<typeof listDeviceBuses>> = [];
      for (let after = from; ;) {
        const page = await listDeviceBuses(db, after, DIRECTORY_PAGE);
        entries.push(...page);
        if (page.length < DIRECTORY_PAGE) break;
        after = page.at(-1)!.seq;
      }
      if (entries.length > 0) lastSeq = Math.max(lastSeq, entries.at(-1)!.seq);
      if (whole) {
        buses.sync(entries);
        lastFull = Date.now();
      } else buses.add(entries);
    })().finally(() => (syncing = undefined));
    return syncing;
  }

  // Ownership: the shards this gateway should own among the live ones (rendezvous hashing); their
  // leases renewed with since when all their sessions have been open, the others released.
  let renewing: Promise<void> | undefined;
  function renewLeases(): Promise<void> {
    renewing ??= (async () => {
      try {
        if (stopping) return;
        await gateways.report(id);
        const live = await gateways.live();
        if (!live.includes(id)) live.push(id);
        const desired = new Set(shardsOwnedBy(id, live, shards));
        if (config.MOTH_SHARED_BUS && desired.has(0)) desired.add(SHARED_BUS);
        const release = buses.held().filter((s) => !desired.has(s));
        const heldSince = buses.heldSince();
        const wanted = [...desired].map((shard) => {
          const since = heldSince.get(shard) ?? null;
          return {
            shard,
            since: since === null ? null : Math.max(since, brokenAt),
            users: shard === SHARED_BUS ? buses.sharedUsers() : 0,
          };
        });
        const granted = await leases.renew(id, wanted, release);
        buses.hold(granted);
        metrics.shardsHeld.set([...granted].filter((s) => s !== SHARED_BUS).length);
        const open = buses.openSessionCount();
        metrics.busSessions.set({ state: 'open' }, open);
        metrics.busSessions.set({ state: 'down' }, buses.sessionCount() - open);
      } catch (err) {
        brokenAt = Date.now();
        log.warn({ err: (err as Error).message }, 'could not renew shard leases');
      }
    })().finally(() => (renewing = undefined));
    return renewing;
  }

  // Robots checked every k-th round (id -> k), as last read; kept when a read fails.
  let multiples = new Map<string, number>();
  const refreshMultiples = () =>
    intervalMultiples(db).then(
      (m) => void (multiples = m),
      (err: Error) =>
        log.warn({ err: err.message }, 'could not read which robots are checked every k-th round'),
    );
  await refreshMultiples();

  /** Opens round n on the shards held now: counts heartbeats for it, sends HEALTHCHECK on every bus. */
  async function open(message: HealthcheckMessage): Promise<void> {
    if (message.round <= openRound || stopping) return;
    if (message.nonce !== undefined) nonces.set(message.round, message.nonce);
    for (const r of nonces.keys()) if (r < message.round - 2) nonces.delete(r);
    openRound = message.round;
    const at = Date.now();
    try {
      await rounds.markOpened(message.round, id, buses.held(), at);
    } catch (err) {
      brokenAt = at;
      log.warn({ round: message.round, err: (err as Error).message }, 'could not record the round opening');
    }
    // Robots checked every k-th round are not asked in the others. Which they are is read from Postgres
    // after each round, for the next: a HEALTHCHECK never waits for Postgres (a held one would cost the
    // robot its answer), and a policy change applies from the round after the read.
    const { failed } = await buses.sendToAll(
      message,
      config.MOTH_HEALTHCHECK_SPREAD_MS,
      new Set(restingAt(message.round, multiples)),
    );
    void refreshMultiples();
    if (failed > 0) log.warn({ round: message.round, failed }, 'HEALTHCHECK not sent on some buses');
  }

  // Rounds reach every gateway by pub/sub; a gateway that missed one (Redis reconnecting) finds it
  // by polling, and opens it if it is still young.
  const subscriber = createRedis(
    { url: config.REDIS_URL, cluster: config.REDIS_CLUSTER },
    'worker',
    'rollcall-gateway-rounds',
  );
  subscriber.on('error', () => {});
  subscriber.on('message', (channel: string, raw: string) => {
    if (channel !== keys.roundsIssued) return;
    try {
      void open(JSON.parse(raw) as HealthcheckMessage);
    } catch {
      log.warn('malformed round announcement');
    }
  });
  await subscriber.subscribe(keys.roundsIssued);
  await followRevocations(subscriber, keys.tokensRevoked, ingest);
  async function catchUp(): Promise<void> {
    const current = await rounds.current();
    if (current <= openRound) return;
    const meta = await rounds.meta(current);
    if (!meta || Date.now() - meta.issuedAt > (meta.intervalSeconds * 1000) / 2) {
      openRound = Math.max(openRound, current);
      return;
    }
    await open(healthcheck(current, meta.intervalSeconds, new Date(meta.issuedAt), meta.nonce));
  }

  let ticks = 0;
  const timer = setInterval(() => {
    void renewLeases();
    catchUp().catch(() => (brokenAt = Date.now()));
    // The scheduler lives in Redis: if Redis lost it (a new or wiped server), put it back.
    if (++ticks % SCHEDULER_CHECK_TICKS === 0) {
      redis
        .exists(keys.schedulerEvery)
        .then(async (exists) => {
          if (exists) return;
          log.warn('round scheduler missing from Redis: re-creating it');
          await services.scheduler.ensure(
            (await settings.current())['device.healthcheckIntervalSeconds'],
            true,
          );
        })
        .catch(() => {});
    }
  }, LEASE_PERIOD_MS);
  const directoryTimer = setInterval(() => {
    syncDirectory().catch((err: Error) => log.warn({ err: err.message }, 'device directory sync failed'));
  }, DIRECTORY_PERIOD_MS);

  const issueRound = createIssueRound({
    rounds,
    leases,
    shards,
    announce: (round, message) => rounds.announce(round, message),
    intervalSeconds: async () => (await settings.current())['device.healthcheckIntervalSeconds'],
    ensureLivenessState: createLivenessRecovery({
      db,
      redis,
      keys,
      liveness,
      rounds,
      logger: log,
      owner: id,
    }),
    enqueueEvaluation: (round) => services.queues.enqueueEvaluation(round),
    reschedule: (interval) => services.scheduler.ensure(interval),
    metrics,
    logger: log,
  });

  await syncDirectory(true);
  await renewLeases();
  openRound = await rounds.current();
  const roundWorker = new Worker(QUEUES.issueRound, (job) => issueRound(job), {
    connection: services.bullConnection('worker'),
    prefix: config.QUEUE_PREFIX,
    concurrency: 1,
  });
  roundWorker.on('error', (err) => log.warn({ err: err.message }, 'round worker error'));

  clientChannel.start();
  publisher.start();
  await services.scheduler.ensure((await settings.current())['device.healthcheckIntervalSeconds'], true);
  const ops = await startRoleOps(config, options, metrics, {
    ...services.readiness,
    moth: async () => {
      if (!clientChannel.isOpen) throw new Error('client event session is down');
      if (buses.sessionCount() > 0 && buses.openSessionCount() === 0)
        throw new Error('no device-bus session is up');
    },
  });
  log.info({ moth: config.MOTH_URL, opsPort: ops?.port, shards: buses.held().length }, 'gateway started');

  const role: Role & {
    id: string;
    metrics: typeof metrics;
    ingest: typeof ingest;
    buses: typeof buses;
    clientChannel: MothClient;
    opsPort: number | undefined;
  } = {
    id,
    metrics,
    ingest,
    buses,
    clientChannel,
    opsPort: ops?.port,
    async stop() {
      stopping = true;
      // Nothing more is read: a busy fleet would otherwise keep the loop from draining the rest.
      buses.pause();
      await ops?.stop();
      clearInterval(timer);
      clearInterval(directoryTimer);
      await renewing;
      await roundWorker.close();
      await ingest.close();
      await publisher.stop();
      // Handing over at once: the buses closed first (so no two gateways hear one device), then the
      // leases released, not left to expire.
      const held = buses.held();
      await Promise.all([buses.stop(), clientChannel.stop()]);
      await leases.renew(id, [], held).catch(() => {});
      await gateways.remove(id).catch(() => {});
      await subscriber.quit().catch(() => subscriber.disconnect());
      await services.close();
    },
  };
  return role;
}
