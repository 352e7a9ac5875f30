import type { Db } from '../db/knex';
import type { SessionEffects } from '../domain/effects';
import type { SettingValues } from '../domain/settings';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import { createConnectDevices } from '../operations/connect-device';
import { createGatewayRecords } from '../operations/gateway-records';
import type { Liveness } from '../redis/liveness';
import { createConnector } from './connector';
import type { DeviceBuses } from './device-buses';
import { createGoodbyes } from './goodbyes';
import { createHeartbeatIngest } from './heartbeat-ingest';
import { createHeartbeatRecords } from './heartbeat-records';
import type { LinkMeter } from './link-meter';
import type { RefusalNotices } from './refusal-notices';
import type { RoundOpener } from './round-opener';
import type { SelfWatch } from './self-watch';

export interface HearingDeps {
  readonly db: Db;
  readonly liveness: Liveness;
  readonly settings: () => Promise<SettingValues>;
  /** The buses this gateway holds: their frames come in here, and reading pauses when writes fall behind. */
  readonly buses: DeviceBuses;
  readonly opener: RoundOpener;
  readonly selfWatch: SelfWatch;
  readonly meter: LinkMeter;
  readonly notices: RefusalNotices;
  /** Hands the effects of committed transitions to their queues (the sweeper takes what this loses). */
  readonly enqueueEffects: (sessions: readonly SessionEffects[]) => Promise<void>;
  /** This gateway did not hear a round reliably (a batch not written). */
  readonly broke: () => void;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/**
 * What the gateway hears on its buses, in the order a frame meets it: the ingest decodes it and
 * records the round in Redis (liveness); a device absent from the connected index goes to the
 * connector (its first or recovered heartbeat), whose effects go to their queues, and its answer to
 * the link meter; a refused one to the refusal notices; a GOODBYE to the goodbyes, which disconnect.
 * The events of each transition need no nudge: their commit notifies the sequencer, whose numbering
 * wakes the publisher.
 */
export function createHearing(deps: HearingDeps) {
  const { db, liveness, buses, opener, metrics, logger: log } = deps;
  const records = createGatewayRecords(db);
  const connector = createConnector({
    connect: createConnectDevices({ db, settings: deps.settings }),
    handOff: deps.enqueueEffects,
    // Out of the index again, so the next heartbeat of each tries the transition again.
    failed: (deviceIds) => {
      for (const id of deviceIds) {
        ingest.forgetDevice(id);
        liveness
          .forgetDevice(id)
          .catch((err: Error) => log.warn({ err: err.message, deviceId: id }, 'could not forget a device'));
      }
    },
    metrics,
    logger: log,
  });
  const ingest = createHeartbeatIngest({
    ...createHeartbeatRecords({ records, liveness, directory: buses.directory, logger: log }),
    liveness,
    metrics,
    logger: log,
    openRound: opener.openRound,
    roundNonce: opener.nonce,
    goodbye: (message, deviceId) => void goodbyes(message, deviceId),
    onWriteFailure: deps.broke,
    onBackpressure: (behind) => {
      deps.selfWatch.behind(behind);
      if (behind) buses.pause();
      else buses.resume();
    },
    connect: (fresh) => {
      deps.meter.reconnected(fresh.map((f) => f.deviceId));
      connector.add(fresh);
    },
    answered: (answers) => deps.meter.answered(answers),
    refused: (refusals) => deps.notices.refused(refusals),
  });
  const goodbyes = createGoodbyes({
    db,
    records,
    metrics,
    logger: log,
    openRound: opener.openRound,
    roundNonce: opener.nonce,
    forget: async (deviceId) => {
      ingest.forgetDevice(deviceId);
      await liveness.forgetDevice(deviceId);
    },
    disconnected: deps.enqueueEffects,
  });
  return { ingest, connector };
}
