import { createIssueRoundJob } from '../../jobs/issue-round';
import { createEventSigner } from '../../src/db/signing-keys';
import { createDb } from '../../src/db/knex';
import { republishRecent } from '../../src/db/outbox';
import { markBusesUnstable } from '../../src/db/unstable-buses';
import { createBusLossLog } from '../../src/gateway/bus-loss-log';
import { createBusLossReports } from '../../src/gateway/bus-loss-reports';
import { createDeviceBuses } from '../../src/gateway/device-buses';
import { createDeviceDirectory } from '../../src/gateway/device-directory';
import { createHearing, type HearingDeps } from '../../src/gateway/hearing';
import { createLinkMeter } from '../../src/gateway/link-meter';
import { createLinkReports } from '../../src/gateway/link-reports';
import { createOutboxPublisher } from '../../src/streams/outbox-publisher';
import { createRefusalNotices, REFUSAL_NOTICE_WINDOW_MS } from '../../src/gateway/refusal-notices';
import { createOncePer } from '../../src/redis/rate-limit';
import { createCommandSender } from '../../src/gateway/command-sender';
import { createRecordAuthFailure } from '../../src/operations/record-auth-failure';
import { createGatewayRecords } from '../../src/operations/gateway-records';
import { isRegisteredChannelId } from '../../src/domain/channel-ids';
import { followRevocations } from '../../src/gateway/revocations';
import { createLivenessRecovery } from '../../src/operations/recover-liveness';
import { createRoundOpener } from '../../src/gateway/round-opener';
import { createSelfWatch } from '../../src/gateway/self-watch';
import { createShardOwnership } from '../../src/gateway/shard-ownership';
import type { Logger } from '../../src/logger';
import { createMetrics, type Metrics } from '../../src/metrics';
import { MothClient } from '../../src/moth/client';
import type { HealthcheckMessage } from '../../src/moth/codec';
import { createIssueRound } from '../../src/operations/issue-round';
import { createPruneLinkBuckets, createRecordLinks } from '../../src/operations/record-links';
import { createRedis } from '../../src/redis/connection';
import { createGatewayRegistry, createRounds } from '../../src/redis/rounds';
import { createShardLeases } from '../../src/redis/shard-leases';
import { createSequencer } from '../../src/streams/sequencer';
import type { BackedConfig, OpsOptions, Services } from './services';

export type GatewayConfig = BackedConfig & { MOTH_URL: string };

/** Leases are renewed this often; one not renewed for three periods is taken over. */
export const LEASE_PERIOD_MS = 1000;
/** Events sent this long before a Moth session dropped are sent again. */
const REPUBLISH_WINDOW_SECONDS = 3;

/** The gateway's parts, put together. */
export function buildGateway(
  id: string,
  config: GatewayConfig,
  services: Services,
  log: Logger,
  options: OpsOptions,
) {
  const { db, redis, keys, settings, rounds } = services;
  const metrics = options.metrics ?? createMetrics('gateway', true);
  const leases = createShardLeases(redis, keys, 3 * LEASE_PERIOD_MS);
  const intervalSeconds = async () => (await settings.current())['device.healthcheckIntervalSeconds'];
  const moth = mothOptions(config, log);
  const { selfWatch, broke, meter, reportLinks, busLosses } = buildWatching(config, services, metrics, log, {
    flush: () => hearing.ingest.flush(),
    round: () => opener.openRound(),
  });
  const buses = buildBuses(config, moth, {
    frame: (data, deviceId, text) => hearing.ingest.push(data, deviceId, text),
    busLosses,
    meter,
    metrics,
  });
  const syncDirectory = createDeviceDirectory({ records: createGatewayRecords(db), buses });
  const opener = buildOpener(id, config, services, { buses, broke, meter, log });
  const ownership = buildOwnership(id, config, services, {
    leases,
    buses,
    selfWatch,
    busLosses,
    metrics,
    log,
  });
  const publishing = buildPublishing(config, services, { moth, buses, syncDirectory, metrics, log });
  const { clientChannel, publisher, signer, sequencer, closeNews } = publishing;
  const notices = buildNotices(services, { signer, buses, log });
  const hearing = buildHearing(services, { buses, opener, selfWatch, meter, notices, broke, metrics, log });

  const issueRound = buildIssueRound(id, config, services, { rounds, leases, intervalSeconds, metrics, log });
  const { ingest, connector } = hearing;
  return {
    metrics,
    buses,
    opener,
    ownership,
    ingest,
    connector,
    publisher,
    clientChannel,
    syncDirectory,
    issueRound,
    intervalSeconds,
    broke,
    selfWatch,
    sequencer,
    closeNews,
    reportLinks,
  };
}

/**
 * What the gateway watches of itself: when it falls behind its buses (or fails to write what it
 * heard), no shard counts as heard before then (the rounds concerned are void, never a miss for
 * their robots); each robot's link; the buses it lost, which void rounds for their own devices
 * alone, a bounded few (src/domain/bus-losses.ts).
 */
function buildWatching(
  config: GatewayConfig,
  services: Services,
  metrics: Metrics,
  log: Logger,
  late: { flush: () => Promise<void>; round: () => number },
) {
  const selfWatch = createSelfWatch({ metrics, logger: log, flush: late.flush });
  const broke = () => selfWatch.suspect('failure');
  const { meter, reportLinks } = buildLinks(config, services, metrics, log);
  const busLosses = buildBusLosses(services, { round: late.round, metrics, log });
  return { selfWatch, broke, meter, reportLinks, busLosses };
}

/** Opens each round on the buses held, each robot's HEALTHCHECK noted by the link meter. */
function buildOpener(
  id: string,
  config: GatewayConfig,
  services: Services,
  parts: { buses: Buses; broke: () => void; meter: ReturnType<typeof createLinkMeter>; log: Logger },
) {
  const { meter } = parts;
  return createRoundOpener({
    id,
    records: createGatewayRecords(services.db),
    rounds: services.rounds,
    buses: parts.buses,
    spreadMs: config.MOTH_HEALTHCHECK_SPREAD_MS,
    logger: parts.log,
    broke: parts.broke,
    asked: (deviceId, round, at) => meter.asked(deviceId, round, at),
    answeredLast: (deviceId) => meter.answeredLast(deviceId),
  });
}

const mothOptions = (config: GatewayConfig, log: Logger): Moth => ({
  url: config.MOTH_URL,
  frameGapMs: config.MOTH_FRAME_GAP_MS,
  pingSeconds: config.MOTH_PING_SECONDS,
  logger: log,
});

/**
 * One session per device bus of the shards held: its frames go to the hearing; a bus lost, restored,
 * opened or closed goes to the bus-loss log (and the link meter forgets a bus let go).
 */
function buildBuses(
  config: GatewayConfig,
  moth: Moth,
  parts: {
    frame: Parameters<typeof createDeviceBuses>[0]['onFrame'];
    busLosses: ReturnType<typeof buildBusLosses>;
    meter: ReturnType<typeof createLinkMeter>;
    metrics: Metrics;
  },
) {
  const { busLosses, meter, metrics } = parts;
  return createDeviceBuses({
    shards: config.SHARDS,
    busPath: config.channels.deviceBus,
    sharedBusPath: config.MOTH_SHARED_BUS ? config.channels.sharedDeviceBus : undefined,
    moth: { ...moth, key: config.channels.deviceKey },
    onFrame: parts.frame,
    onBus: (change, deviceIds) => {
      busLosses.log.apply(change, deviceIds);
      if (change === 'lost') metrics.busesLost.inc(deviceIds.length);
      if (change === 'closed') meter.forget(deviceIds);
    },
  });
}

/**
 * The shards this gateway holds, by lease: it vouches for the rounds it heard through (its self-watch
 * says since when it was broken) and reports the buses it lost.
 */
function buildOwnership(
  id: string,
  config: GatewayConfig,
  services: Services,
  parts: {
    leases: ReturnType<typeof createShardLeases>;
    buses: Buses;
    selfWatch: ReturnType<typeof createSelfWatch>;
    busLosses: ReturnType<typeof buildBusLosses>;
    metrics: Metrics;
    log: Logger;
  },
) {
  const { selfWatch } = parts;
  return createShardOwnership({
    id,
    shards: config.SHARDS,
    sharedBus: config.MOTH_SHARED_BUS,
    gateways: createGatewayRegistry(services.redis, services.keys),
    leases: parts.leases,
    buses: parts.buses,
    metrics: parts.metrics,
    logger: parts.log,
    brokenAt: selfWatch.brokenAt,
    broke: () => selfWatch.suspect('failure'),
    vouch: selfWatch.vouch,
    reportBusLosses: parts.busLosses.report,
  });
}

/** A robot refused on its own bus is told why, signed, once a minute; operators get DEVICE_AUTH_FAILED. */
function buildNotices(
  services: Services,
  parts: { signer: ReturnType<typeof createEventSigner>; buses: Buses; log: Logger },
) {
  const { signer, buses } = parts;
  return createRefusalNotices({
    claim: createOncePer(services.redis, services.keys.rateLimits.refusalNotice, REFUSAL_NOTICE_WINDOW_MS),
    sign: (body) => signer.sign(body),
    sendToDevice: (deviceId, body) => buses.sendToDevice(deviceId, body),
    record: createRecordAuthFailure(services.db),
    logger: parts.log,
  });
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
export function warnOfInstantChannels(config: GatewayConfig, log: Logger) {
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
 * Connections of the gateway's news (the sequencer, the publisher, the signing key) beside its
 * pool: a fleet arriving at once holds that pool with its connects and token lookups (up to 2 and
 * 3 at once of its 10), and numbering an event or reading a robot's command must not queue behind
 * them.
 */
const NEWS_CONNECTIONS = 4;

/**
 * The outbox published on Moth: client events on the client channel (its own key: a client of the
 * events cannot join a robot's bus, nor the reverse), a command for one robot on its bus only. It
 * numbers and reads the streams through a pool of its own (NEWS_CONNECTIONS, closed by `closeNews`).
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
  const db = createDb(config.DATABASE_URL, NEWS_CONNECTIONS);
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
    sendCommand: createCommandSender({ buses, syncDirectory }),
    sign: (event) => signer.sign(event),
  });
  // What was written to a session just before it dropped may not have been relayed: send it again.
  clientChannel.on('close', () => {
    republishRecent(db, 'client', REPUBLISH_WINDOW_SECONDS).catch((err: Error) =>
      log.warn({ err: err.message }, 'could not mark recent events for re-sending'),
    );
  });
  clientChannel.on('open', () => publisher.clientChannelOpen());
  const sequencer = createSequencer({ db, logger: log });
  return { clientChannel, publisher, signer, sequencer, closeNews: () => db.destroy() };
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
    // Through dispatch jobs, as the evaluation's: the workers add each effect's job, not the gateway,
    // whose event loop a fleet arriving at once keeps busy with its buses (adding 9,900 robots' effect
    // jobs here cost it ~0.3 s of CPU while a round's HEALTHCHECKs were going out).
    enqueueEffects: (sessions) => services.queues.dispatchEffects(sessions),
    logger: log,
  });
}

/**
 * Rounds reach every gateway by pub/sub (a gateway that missed one finds it by polling, in
 * `catchUp`); revoked tokens too.
 */
export async function followRounds(
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
