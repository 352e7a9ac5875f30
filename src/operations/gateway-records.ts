import {
  findDeviceIdsByTokenHashes,
  findTokenHashesOfDevices,
  listDeviceBuses,
  markHeardOnBus,
  markProofsOnly,
  markTokenExposed,
} from '../db/devices';
import type { Db } from '../db/knex';
import { intervalMultiples } from '../db/policies';

/**
 * What the gateway reads and notes of devices in Postgres, its one way there besides the connect and
 * disconnect operations: the buses to open, the tokens and proof keys it does not hold, how often
 * each robot is asked, and the ingest's notes (tokens seen in text frames, devices taking proofs
 * only, the bus each is heard on). Each a single statement.
 */
export function createGatewayRecords(db: Db) {
  return {
    /** Live devices' buses after a directory number, in its order. */
    busesAfter: (afterSeq: number, limit: number) => listDeviceBuses(db, afterSeq, limit),
    devicesOfTokens: (hashes: readonly string[]) => findDeviceIdsByTokenHashes(db, hashes),
    tokensOfDevices: (deviceIds: readonly string[]) => findTokenHashesOfDevices(db, deviceIds),
    /** Devices asked every k-th round (their policy's or their group's), by id. */
    intervalMultiples: () => intervalMultiples(db),
    markHeardOnBus: (deviceIds: readonly string[], bus: 'own' | 'shared') =>
      markHeardOnBus(db, deviceIds, bus),
    markProofsOnly: (deviceIds: readonly string[]) => markProofsOnly(db, deviceIds),
    markTokenExposed: (deviceIds: readonly string[]) => markTokenExposed(db, deviceIds),
  };
}

export type GatewayRecords = ReturnType<typeof createGatewayRecords>;
