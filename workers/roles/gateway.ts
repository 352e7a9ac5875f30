import type { Logger } from '../../src/logger';
import type { HealthcheckMessage } from '../../src/moth/codec';
import { CAUGHT_UP_MARGIN_MS } from '../../src/domain/rounds';
import { startConsumers } from '../../src/queues/consumers';
import { createSchedulerWatch } from '../../src/gateway/scheduler-watch';
import type { Role } from './role';
import {
  buildGateway,
  followRounds,
  LEASE_PERIOD_MS,
  warnOfInstantChannels,
  type GatewayConfig,
} from './gateway-parts';

export type { GatewayConfig };
import { openServices, replicaId, startRoleOps, type OpsOptions, type Services } from './services';

/** New devices are picked up this often (the whole directory is re-read every 15 s). */
const DIRECTORY_PERIOD_MS = 1000;
const SCHEDULER_CHECK_TICKS = 3;

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

  parts.selfWatch.start();
  const subscriber = await followRounds(config, services, vouchAfterOpening(parts), ingest, log);
  const timers = startTimers(config, services, parts, log);

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
  const ops = await startRoleOps(config, options, metrics, { ...services.readiness, moth: mothReady(parts) });
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
      timers.forEach(clearInterval);
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
      await parts.closeNews();
    },
  } satisfies Role & Record<string, unknown>;
}

type Parts = ReturnType<typeof buildGateway>;

/**
 * Vouched for soon after each round opens, so the evaluation of the round before need not wait for
 * the next periodic renewal to learn whether this gateway kept up through its close.
 */
const vouchAfterOpening = ({ ownership, opener }: Parts) => ({
  open(message: HealthcheckMessage): Promise<void> {
    setTimeout(() => void ownership.renew(), CAUGHT_UP_MARGIN_MS + 50).unref();
    return opener.open(message);
  },
});

/** Leases renewed and rounds caught up (the scheduler checked every few), the directory read, links reported. */
function startTimers(config: GatewayConfig, services: Services, parts: Parts, log: Logger): NodeJS.Timeout[] {
  const watchScheduler = createSchedulerWatch({
    scheduler: services.scheduler,
    intervalSeconds: parts.intervalSeconds,
    logger: log,
  });
  let ticks = 0;
  return [
    setInterval(() => {
      void parts.ownership.renew();
      parts.opener.catchUp().catch(() => parts.broke());
      if (++ticks % SCHEDULER_CHECK_TICKS === 0) void watchScheduler();
    }, LEASE_PERIOD_MS),
    setInterval(() => {
      parts
        .syncDirectory()
        .catch((err: Error) => log.warn({ err: err.message }, 'device directory sync failed'));
    }, DIRECTORY_PERIOD_MS),
    setInterval(() => void parts.reportLinks(), config.LINK_REPORT_SECONDS * 1000),
  ];
}

/** Ready while the client event session is up and, when it holds buses, at least one of them. */
const mothReady =
  ({ clientChannel, buses }: Parts) =>
  async (): Promise<void> => {
    if (!clientChannel.isOpen) throw new Error('client event session is down');
    if (buses.sessionCount() > 0 && buses.openSessionCount() === 0)
      throw new Error('no device-bus session is up');
  };
