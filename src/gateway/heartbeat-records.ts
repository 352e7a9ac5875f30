import type { GatewayRecords } from '../operations/gateway-records';
import type { Logger } from '../logger';
import type { Liveness } from '../redis/liveness';
import type { BusEntry } from './device-buses';
import type { HeartbeatIngestDeps } from './heartbeat-ingest';

/**
 * What the heartbeat ingest reads from and notes in Postgres: tokens and proof keys it does not
 * have, tokens sent in text frames, devices that now take proofs only, the bus each is heard on.
 * Notes are off the heartbeat's path: a failure is logged, and the next heartbeat notes it again.
 */
export function createHeartbeatRecords(deps: {
  records: GatewayRecords;
  liveness: Pick<Liveness, 'requireProofs'>;
  directory: ReadonlyMap<string, BusEntry>;
  logger: Logger;
}): Pick<HeartbeatIngestDeps, 'lookupTokens' | 'lookupKeys' | 'tokenExposed' | 'requireProofs' | 'heardOn'> {
  const { records, logger: log } = deps;
  const warn = (what: string) => (err: Error) => log.warn({ err: err.message }, `could not record ${what}`);
  const markBus = createBusMarks((ids, bus) =>
    records.markHeardOnBus(ids, bus).catch(warn('which bus devices use')),
  );
  return {
    lookupTokens: (hashes) => records.devicesOfTokens(hashes),
    lookupKeys: (deviceIds) => records.tokensOfDevices(deviceIds),
    tokenExposed: (deviceIds) =>
      void records.markTokenExposed(deviceIds).catch(warn('tokens sent in text frames')),
    requireProofs: (entries) => {
      // Postgres first, so the mark survives Redis; until both are written, the next proof asks again.
      records
        .markProofsOnly(entries.map((e) => e.deviceId))
        .then(() => deps.liveness.requireProofs(entries))
        .catch(warn('devices taking proofs only'));
    },
    heardOn: (deviceIds, bus) => {
      const changed = deviceIds.filter((d) => {
        const entry = deps.directory.get(d);
        if (!entry || entry.heardOnBus === bus) return false;
        entry.heardOnBus = bus;
        return true;
      });
      markBus(changed, bus);
    },
  };
}

/**
 * The bus each device is heard on, written one statement at a time with all that gathered meanwhile:
 * a fleet arriving at once is first heard in a burst of batches, whose writes would otherwise take
 * the pool (and the rows) from its own connects. `write` reports its own failures (a mark lost is
 * written again when the directory is next read).
 */
export function createBusMarks(
  write: (deviceIds: readonly string[], bus: 'own' | 'shared') => Promise<void>,
) {
  const pending = { own: new Set<string>(), shared: new Set<string>() };
  let writing = false;
  async function drain(): Promise<void> {
    writing = true;
    try {
      while (pending.own.size + pending.shared.size > 0)
        for (const bus of ['own', 'shared'] as const) {
          const ids = [...pending[bus]];
          pending[bus].clear();
          if (ids.length > 0) await write(ids, bus);
        }
    } finally {
      writing = false;
    }
  }
  return (deviceIds: readonly string[], bus: 'own' | 'shared'): void => {
    const other = bus === 'own' ? 'shared' : 'own';
    for (const id of deviceIds) {
      pending[other].delete(id);
      pending[bus].add(id);
    }
    if (!writing && deviceIds.length > 0) void drain();
  };
}
