import { Worker } from 'bullmq';
import { connectDevice } from '../db/transitions';
import { findDeviceIdsByTokenHashes } from '../db/devices';
import { republishRecent } from '../db/outbox';
import { createHeartbeatIngest } from '../gateway/heartbeat-ingest';
import { createOutboxPublisher } from '../gateway/outbox-publisher';
import { createLivenessRecovery } from '../gateway/recover-liveness';
import type { Logger } from '../logger';
import { createMetrics } from '../metrics';
import { MothClient } from '../moth/client';
import { bullConnection } from '../queues/connection';
import { QUEUES } from '../queues/names';
import { createGatewayRegistry, createRounds } from '../redis/rounds';
import { createIssueRound } from '../../jobs/issue-round';
import type { Role } from './role';
import { createServices, replicaId, startRoleOps, type BackedConfig, type OpsOptions } from './services';

export type GatewayConfig = BackedConfig & { MOTH_URL: string };

const PRESENCE_PERIOD_MS = 1000;
const SCHEDULER_CHECK_TICKS = 3;
/** Events sent this long before a Moth session dropped are sent again. */
const REPUBLISH_WINDOW_SECONDS = 3;

/**
 * The `gateway` role: holds the Moth sessions. Broadcasts HEALTHCHECK (it runs the round job, so only
 * a process with a Moth session issues rounds), ingests HEARTBEAT, publishes the outbox. Run 1..n:
 * every gateway hears every heartbeat, and recording one twice is harmless.
 */
export async function startGateway(config: GatewayConfig, logger: Logger, options: OpsOptions = {}) {
  const id = replicaId('gateway');
  const log = logger.child({ gateway: id });
  const services = createServices(config, 'gateway');
  const { db, redis, keys, liveness, settings } = services;
  const metrics = options.metrics ?? createMetrics('gateway', true);
  const rounds = createRounds(redis, keys);
  const gateways = createGatewayRegistry(redis, keys);
  const mothOptions = {
    url: config.MOTH_URL,
    key: config.MOTH_KEY,
    frameGapMs: config.MOTH_FRAME_GAP_MS,
    pingSeconds: config.MOTH_PING_SECONDS,
    logger: log,
  };
  const deviceChannel = new MothClient({ ...mothOptions, path: config.channels.deviceManagement });
  const clientChannel = new MothClient({ ...mothOptions, path: config.channels.clientEvents });

  let brokenAt = 0;
  const publisher = createOutboxPublisher({
    db,
    metrics,
    logger: log,
    send: (channel, body) => (channel === 'client' ? clientChannel : deviceChannel).send(body),
  });
  const ingest = createHeartbeatIngest({
    liveness,
    metrics,
    logger: log,
    onWriteFailure: () => (brokenAt = Date.now()),
    onBackpressure: (behind) => (behind ? deviceChannel.pause() : deviceChannel.resume()),
    lookupTokens: (hashes) => findDeviceIdsByTokenHashes(db, hashes),
    connect: async (deviceId, round) => {
      const automaticRecording = (await settings.current())['recording.automatic'];
      const connected = await connectDevice(db, deviceId, round, { automaticRecording });
      if (!connected) return false;
      await services.enqueueEffects([connected]);
      publisher.nudge();
      return true;
    },
  });
  deviceChannel.on('message', (data) => ingest.push(data));
  // What was written to a session just before it dropped may not have been relayed: send it again.
  const republish = (channel: 'client' | 'device') => () => {
    republishRecent(db, channel, REPUBLISH_WINDOW_SECONDS).catch((err: Error) =>
      log.warn({ err: err.message }, 'could not mark recent events for re-sending'),
    );
  };
  clientChannel.on('close', republish('client'));
  deviceChannel.on('close', republish('device'));

  // Presence: a round is valid only if some gateway held its device-channel session throughout it
  // and could record what it heard.
  const reportPresence = async () => {
    const since = deviceChannel.connectedSince;
    await gateways.report(id, since === null ? null : Math.max(since, brokenAt));
  };
  // The scheduler lives in Redis: if Redis lost it (a new or wiped server), put it back.
  let ticks = 0;
  const presenceTimer = setInterval(() => {
    reportPresence().catch(() => (brokenAt = Date.now()));
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
  }, PRESENCE_PERIOD_MS);

  const issueRound = createIssueRound({
    rounds,
    gateways,
    broadcast: (message) => deviceChannel.send(message),
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

  // Only a gateway whose Moth session is up takes round jobs.
  let roundWorker: Worker | undefined;
  deviceChannel.on('open', () => {
    void reportPresence().catch(() => {});
    if (!roundWorker) {
      roundWorker = new Worker(QUEUES.issueRound, (job) => issueRound(job), {
        connection: bullConnection(config.REDIS_URL, 'worker'),
        prefix: config.QUEUE_PREFIX,
        concurrency: 1,
      });
      roundWorker.on('error', (err) => log.warn({ err: err.message }, 'round worker error'));
    } else void roundWorker.resume();
  });
  deviceChannel.on('close', () => {
    void reportPresence().catch(() => {});
    void roundWorker?.pause(true);
  });

  deviceChannel.start();
  clientChannel.start();
  publisher.start();
  await services.scheduler.ensure((await settings.current())['device.healthcheckIntervalSeconds'], true);
  const ops = await startRoleOps(config, options, metrics, {
    ...services.readiness,
    moth: async () => {
      if (!deviceChannel.isOpen) throw new Error('device channel session is down');
    },
  });
  log.info({ moth: config.MOTH_URL, opsPort: ops?.port }, 'gateway started');

  const role: Role & {
    id: string;
    metrics: typeof metrics;
    ingest: typeof ingest;
    deviceChannel: MothClient;
    opsPort: number | undefined;
  } = {
    id,
    metrics,
    ingest,
    deviceChannel,
    opsPort: ops?.port,
    async stop() {
      await ops?.stop();
      clearInterval(presenceTimer);
      await roundWorker?.close();
      await ingest.close();
      await publisher.stop();
      await gateways.remove(id).catch(() => {});
      await Promise.all([deviceChannel.stop(), clientChannel.stop()]);
      await services.close();
    },
  };
  return role;
}
