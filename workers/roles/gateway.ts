import { createIssueRoundJob } from '../../jobs/issue-round';
import { createEventSigner } from '../../src/db/signing-keys';
import { republishRecent } from '../../src/db/outbox';
import type { PlatformEvent } from '../../src/domain/events';
import { markBusesUnstable } from '../../src/db/unstable-buses';
import { createBusLossLog } from '../../src/gateway/bus-loss-log';
import { createBusLossReports } from '../../src/gateway/bus-loss-reports';
import { createDeviceBuses } from '../../src/gateway/device-buses';
import { createDeviceDirectory } from '../../src/gateway/device-directory';
import { createHearing, type HearingDeps } from '../../src/gateway/hearing';
import { createLinkMeter } from '../../src/gateway/link-meter';
import { createLinkReports } from '../../src/gateway/link-reports';
import { createOutboxPublisher } from '../../src/gateway/outbox-publisher';
import { createRefusalNotices, REFUSAL_NOTICE_WINDOW_MS } from '../../src/gateway/refusal-notices';
import { createOncePer } from '../../src/redis/rate-limit';
import { appendEvents } from '../../src/db/outbox';
import { clientEvent } from '../../src/domain/events';
import { isRegisteredChannelId } from '../../src/domain/channel-ids';
import { followRevocations } from '../../src/gateway/revocations';
import { createLivenessRecovery } from '../../src/gateway/recover-liveness';
import { createRoundOpener } from '../../src/gateway/round-opener';
import { createSchedulerWatch } from '../../src/gateway/scheduler-watch';
import { createSelfWatch } from '../../src/gateway/self-watch';
import { createShardOwnership } from '../../src/gateway/shard-ownership';
import type { Logger } from '../../src/logger';
import { createMetrics, type Metrics } from '../../src/metrics';
import { MothClient } from '../../src/moth/client';
import type { HealthcheckMessage } from '../../src/moth/codec';
import { CAUGHT_UP_MARGIN_MS } from '../../src/domain/rounds';
import { createIssueRound } from '../../src/operations/issue-round';
import { createPruneLinkBuckets, createRecordLinks } from '../../src/operations/record-links';
import { startConsumers } from '../../src/queues/consumers';
import { createRedis } from '../../src/redis/connection';
import { createGatewayRegistry, createRounds } from '../../src/redis/rounds';
import { createShardLeases } from '../../src/redis/shard-leases';
import { createSequencer } from '../../src/streams/sequencer';
import type { Role } from './role';
import {
  openServices,
  replicaId,
  startRoleOps,
  type BackedConfig,
  type OpsOptions,
  type Services,
} from './services';

export type GatewayConfig = BackedConfig & { MOTH_URL: string };

/** Leases are renewed this often; one not renewed for three periods is taken over. */
const LEASE_PERIOD_MS = 1000;
/** New devices are picked up this often (the whole directory is re-read every 15 s). */
const DIRECTORY_PERIOD_MS = 1000;
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
  const services = await openServices(config, 'gateway');
  const parts = buildGateway(id, config, services, log, options);
  const { buses, opener, ownership, ingest, connector, publisher, clientChannel, syncDirectory, metrics } =
    parts;

  // Vouched for soon after each round opens, so the evaluation of the round before need not wait
  // for the next periodic renewal to learn whether this gateway kept up through its close.
  const vouchAfterOpening = {
    open(message: HealthcheckMessage): Promise<void> {
      setTimeout(() => void ownership.renew(), CAUGHT_UP_MARGIN_MS + 50).unref();
      return opener.open(message);
    },
  };
  parts.selfWatch.start();
  const subscriber = await followRounds(config, services, vouchAfterOpening, ingest, log);
  const watchScheduler = createSchedulerWatch({
    scheduler: services.scheduler,
    intervalSeconds: parts.intervalSeconds,
    logger: log,
  });
  let ticks = 0;
  const timer = setInterval(() => {
    void ownership.renew();
    opener.catchUp().catch(() => parts.broke());
    if (++ticks % SCHEDULER_CHECK_TICKS === 0) void watchScheduler();
  }, LEASE_PERIOD_MS);
  const directoryTimer = setInterval(() => {
    syncDirectory().catch((err: Error) => log.warn({ err: err.message }, 'device directory sync failed'));
  }, DIRECTORY_PERIOD_MS);
  const linkTimer = setInterval(() => void parts.reportLinks(), config.LINK_REPORT_SECONDS * 1000);

  await syncDirectory(true);
  await ownership.renew();
  await opener.start();
  const [roundWorker] = await startConsumers(
    { queues: { issueRound: parts.issueRound } },
    { connection: services.bullConnection('worker'), prefix: config.QUEUE_PREFIX },
    log,
  );
  clientChannel.start();
  parts.sequencer.start();
  publisher.start();
  await services.scheduler.ensure(await parts.intervalSeconds(), true);
  const ops = await startRoleOps(config, options, metrics, {
    ...services.readiness,
    moth: async () => {
      if (!clientChannel.isOpen) throw new Error('client event session is down');
      if (buses.sessionCount() > 0 && buses.openSessionCount() === 0)
        throw new Error('no device-bus session is up');
    },
  });
  log.info({ moth: config.MOTH_URL, opsPort: ops?.port, shards: buses.held().length }, 'gateway started');
  warnOfInstantChannels(config, log);

  return {
    id,
    metrics,
    ingest,
    buses,
    clientChannel,
    opsPort: ops?.port,
    async stop() {
      opener.stop();
      // Nothing more is read: a busy fleet would otherwise keep the loop from draining the rest.
      buses.pause();
      await ops?.stop();
      clearInterval(timer);
      clearInterval(directoryTimer);
      clearInterval(linkTimer);
      await ownership.pause();
      await roundWorker!.close();
      await ingest.close();
      await connector.idle();
      parts.selfWatch.stop();
      await parts.sequencer.stop();
      await publisher.stop();
      // Handing over at once: the buses closed first (so no two gateways hear one device), then the
      // leases released, not left to expire.
      const held = buses.held();
      await Promise.all([buses.stop(), clientChannel.stop()]);
      await ownership.release(held);
      await subscriber.quit().catch(() => subscriber.disconnect());
      await services.close();
    },
  } satisfies Role & Record<string, unknown>;
}

/** The gateway's parts, put together. */
function buildGateway(
  id: string,
  config: GatewayConfig,
  services: Services,
  log: Logger,
  options: OpsOptions,
) {
  const { db, redis, keys, settings } = services;
  const metrics = options.metrics ?? createMetrics('gateway', true);
  const { rounds } = services;
  const leases = createShardLeases(redis, keys, 3 * LEASE_PERIOD_MS);
  const intervalSeconds = async () => (await settings.current())['device.healthcheckIntervalSeconds'];
  const moth = {
    url: config.MOTH_URL,
    frameGapMs: config.MOTH_FRAME_GAP_MS,
    pingSeconds: config.MOTH_PING_SECONDS,
    logger: log,
  };
  // When this gateway falls behind its buses (or fails to write what it heard), no shard counts as
  // heard before then: the rounds concerned are void, never a miss for their robots.
  const selfWatch = createSelfWatch({ metrics, logger: log, flush: () => hearing.ingest.flush() });
  const broke = () => selfWatch.suspect('failure');
  const { meter, reportLinks } = buildLinks(config, services, metrics, log);

  // A lost bus voids rounds for its own devices alone, a bounded few (src/domain/bus-losses.ts).
  const busLosses = buildBusLosses(services, { round: () => opener.openRound(), metrics, log });
  const buses = createDeviceBuses({
    shards: config.SHARDS,
    busPath: config.channels.deviceBus,
    sharedBusPath: config.MOTH_SHARED_BUS ? config.channels.sharedDeviceBus : undefined,
    moth: { ...moth, key: config.channels.deviceKey },
    onFrame: (data, deviceId, text) => hearing.ingest.push(data, deviceId, text),
    onBus: (change, deviceIds) => {
      busLosses.log.apply(change, deviceIds);
      if (change === 'lost') metrics.busesLost.inc(deviceIds.length);
      if (change === 'closed') meter.forget(deviceIds);
    },
  });
  const syncDirectory = createDeviceDirectory({ db, buses });
  const opener = createRoundOpener({
    id,
    db,
    rounds,
    buses,
    spreadMs: config.MOTH_HEALTHCHECK_SPREAD_MS,
    logger: log,
    broke,
    asked: (deviceId, round, at) => meter.asked(deviceId, round, at),
  });
  const ownership = createShardOwnership({
    id,
    shards: config.SHARDS,
    sharedBus: config.MOTH_SHARED_BUS,
    gateways: createGatewayRegistry(redis, keys),
    leases,
    buses,
    metrics,
    logger: log,
    brokenAt: selfWatch.brokenAt,
    broke,
    vouch: selfWatch.vouch,
    reportBusLosses: busLosses.report,
  });
  const { clientChannel, publisher, signer, sequencer } = buildPublishing(config, services, {
    moth,
    buses,
    syncDirectory,
    metrics,
    log,
  });
  const notices = createRefusalNotices({
    claim: createOncePer(redis, keys.rateLimits.refusalNotice, REFUSAL_NOTICE_WINDOW_MS),
    sign: (body) => signer.sign(body),
    sendToDevice: (deviceId, body) => buses.sendToDevice(deviceId, body),
    record: (r) => appendEvents(db, [clientEvent('DEVICE_AUTH_FAILED', r.deviceId, { code: r.code })]),
    logger: log,
  });
  const hearing = buildHearing(services, { buses, opener, selfWatch, meter, notices, broke, metrics, log });

  const issueRound = buildIssueRound(id, config, services, { rounds, leases, intervalSeconds, metrics, log });
  return {
    metrics,
    buses,
    opener,
    ownership,
    ingest: hearing.ingest,
    connector: hearing.connector,
    publisher,
    clientChannel,
    syncDirectory,
    issueRound,
    intervalSeconds,
    broke,
    selfWatch,
    sequencer,
    reportLinks,
  };
}

/** Each robot's link, measured on the buses this gateway holds, and its reports of them. */
function buildLinks(config: GatewayConfig, services: Services, metrics: Metrics, log: Logger) {
  const meter = createLinkMeter({
    observe: (s) => metrics.linkLatencySeconds.observe(s),
    windowRounds: config.LINK_WINDOW_ROUNDS,
  });
  const reportLinks = createLinkReports({
    meter,
    record: createRecordLinks({ db: services.db, settings: () => services.settings.current() }),
    prune: createPruneLinkBuckets(services.db),
    metrics,
    logger: log,
  });
  return { meter, reportLinks };
}

/** What the gateway learns of the buses it lost, and its reports of them. */
function buildBusLosses(
  services: Services,
  parts: { round: () => number; metrics: ReturnType<typeof createMetrics>; log: Logger },
) {
  const lossLog = createBusLossLog({ round: parts.round });
  const report = createBusLossReports({
    log: lossLog,
    store: services.busLosses,
    markUnstable: (ids, fields) => markBusesUnstable(services.db, ids, fields),
    metrics: parts.metrics,
    logger: parts.log,
  });
  return { log: lossLog, report };
}

/** Round issuing (any gateway runs the scheduler's ticks): each closes the round before it. */
function buildIssueRound(
  id: string,
  config: GatewayConfig,
  services: Services,
  parts: {
    rounds: ReturnType<typeof createRounds>;
    leases: ReturnType<typeof createShardLeases>;
    intervalSeconds: () => Promise<number>;
    metrics: ReturnType<typeof createMetrics>;
    log: Logger;
  },
) {
  const { db, liveness } = services;
  const { rounds, log } = parts;
  return createIssueRoundJob({
    issueRound: createIssueRound({
      rounds,
      leases: parts.leases,
      shards: config.SHARDS,
      announce: (round, message) => rounds.announce(round, message),
      intervalSeconds: parts.intervalSeconds,
      ensureLivenessState: createLivenessRecovery({ db, liveness, rounds, logger: log, owner: id }),
      enqueueEvaluation: (round) => services.queues.enqueueEvaluation(round),
      reschedule: (interval) => services.scheduler.ensure(interval),
      metrics: parts.metrics,
      logger: log,
    }),
  });
}

/** An instant channel is keyed by its first joiner: a squatter can take it (docs/security.md). */
function warnOfInstantChannels(config: GatewayConfig, log: Logger) {
  const instant = [config.MOTH_DEVICE_CHANNEL, config.MOTH_CLIENT_CHANNEL].filter(
    (c) => !isRegisteredChannelId(c),
  );
  if (instant.length > 0)
    log.warn(
      { channels: instant },
      'instant Moth channels: whoever joins one first sets its key; register them with Moth and give their ids',
    );
}

type Moth = { url: string; frameGapMs: number; pingSeconds: number; logger: Logger };
type Buses = ReturnType<typeof createDeviceBuses>;

/**
 * The outbox published on Moth: client events on the client channel (its own key: a client of the
 * events cannot join a robot's bus, nor the reverse), a command for one robot on its bus only.
 */
function buildPublishing(
  config: GatewayConfig,
  services: Services,
  parts: {
    moth: Moth;
    buses: Buses;
    syncDirectory: (full?: boolean) => Promise<void>;
    metrics: ReturnType<typeof createMetrics>;
    log: Logger;
  },
) {
  const { db } = services;
  const { buses, syncDirectory, log } = parts;
  const clientChannel = new MothClient({
    ...parts.moth,
    key: config.channels.clientKey,
    path: config.channels.clientEvents,
  });
  const signer = createEventSigner(db);
  const publisher = createOutboxPublisher({
    db,
    metrics: parts.metrics,
    logger: log,
    sendClient: (body) => clientChannel.send(body),
    sendCommand: sendToDevice,
    sign: (event) => signer.sign(event),
  });
  /** A command goes to its robot's bus (and the shared one while the robot is still heard there). */
  async function sendToDevice(body: unknown): Promise<void> {
    const { deviceId } = body as PlatformEvent;
    if (!deviceId) return;
    if (!buses.directory.has(deviceId)) await syncDirectory(true);
    // A device deleted since: nobody is left to tell.
    if (buses.directory.has(deviceId)) await buses.sendToDevice(deviceId, body);
  }
  // What was written to a session just before it dropped may not have been relayed: send it again.
  clientChannel.on('close', () => {
    republishRecent(db, 'client', REPUBLISH_WINDOW_SECONDS).catch((err: Error) =>
      log.warn({ err: err.message }, 'could not mark recent events for re-sending'),
    );
  });
  clientChannel.on('open', () => publisher.clientChannelOpen());
  return { clientChannel, publisher, signer, sequencer: createSequencer({ db, logger: log }) };
}

/** The hearing (src/gateway/hearing.ts), with what it takes of the role's services. */
function buildHearing(
  services: Services,
  parts: Omit<HearingDeps, 'db' | 'liveness' | 'settings' | 'enqueueEffects' | 'logger'> & { log: Logger },
) {
  const { log, ...rest } = parts;
  return createHearing({
    ...rest,
    db: services.db,
    liveness: services.liveness,
    settings: () => services.settings.current(),
    enqueueEffects: (sessions) => services.enqueueEffects(sessions),
    logger: log,
  });
}

/**
 * Rounds reach every gateway by pub/sub (a gateway that missed one finds it by polling, in
 * `catchUp`); revoked tokens too.
 */
async function followRounds(
  config: GatewayConfig,
  services: Services,
  opener: { open(message: HealthcheckMessage): Promise<void> },
  ingest: Parameters<typeof followRevocations>[2],
  log: Logger,
) {
  const { keys } = services;
  const subscriber = createRedis(
    { url: config.REDIS_URL, cluster: config.REDIS_CLUSTER },
    'worker',
    'rollcall-gateway-rounds',
  );
  // Reconnects by itself; a round missed meanwhile is found by `catchUp`, revocations by `forgetTokens`.
  subscriber.on('error', () => {});
  subscriber.on('message', (channel: string, raw: string) => {
    if (channel !== keys.rounds.announced) return;
    try {
      void opener.open(JSON.parse(raw) as HealthcheckMessage);
    } catch {
      log.warn('malformed round announcement');
    }
  });
  await subscriber.subscribe(keys.rounds.announced);
  await followRevocations(subscriber, keys.liveness.tokensRevoked, ingest);
  return subscriber;
}
