import type { GatewayRecords } from '../operations/gateway-records';
import type { DeviceBuses } from './device-buses';

/** New devices are read this often by the caller; the whole directory every FULL_MS. */
const FULL_MS = 15_000;
const PAGE = 10_000;

/**
 * The gateway's directory of every live device's bus: new devices on each call, everything now and
 * then (or when asked: a command for a device it does not know yet). Calls at once share one read.
 */
export function createDeviceDirectory(deps: {
  records: Pick<GatewayRecords, 'busesAfter'>;
  buses: Pick<DeviceBuses, 'sync' | 'add'>;
}) {
  let lastSeq = 0;
  let lastFull = 0;
  let syncing: Promise<void> | undefined;

  async function read(from: number) {
    const entries: Awaited<ReturnType<GatewayRecords['busesAfter']>> = [];
    for (let after = from; ;) {
      const page = await deps.records.busesAfter(after, PAGE);
      entries.push(...page);
      if (page.length < PAGE) return entries;
      after = page.at(-1)!.seq;
    }
  }

  return function sync(full = false): Promise<void> {
    syncing ??= (async () => {
      const whole = full || Date.now() - lastFull >= FULL_MS;
      const entries = await read(whole ? 0 : lastSeq);
      if (entries.length > 0) lastSeq = Math.max(lastSeq, entries.at(-1)!.seq);
      if (!whole) return deps.buses.add(entries);
      deps.buses.sync(entries);
      lastFull = Date.now();
    })().finally(() => (syncing = undefined));
    return syncing;
  };
}
