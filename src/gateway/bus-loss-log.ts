import { BUS_LOSSES_KEPT, isUnstable, type BusLoss } from '../domain/bus-losses';
import type { BusChange } from './device-buses';

interface Entry {
  /** Rounds lost, oldest first; the last one open (`to` null) while the bus is down. */
  losses: BusLoss[];
  /** When each loss began (epoch ms), for the unstable rule. */
  lostAt: number[];
}

/** Opens a loss from `round` unless one is open; false when one was. */
function openLoss(e: Entry, round: number, at: number): boolean {
  const last = e.losses.at(-1);
  if (last && last.to === null) return false;
  e.losses.push({ from: round, to: null });
  e.lostAt.push(at);
  if (e.losses.length > BUS_LOSSES_KEPT) {
    e.losses.shift();
    e.lostAt.shift();
  }
  return true;
}

/** Closes the open loss at `round`; false when none was open. */
function closeLoss(e: Entry, round: number): boolean {
  const last = e.losses.at(-1);
  if (!last || last.to !== null) return false;
  e.losses[e.losses.length - 1] = { from: last.from, to: round };
  return true;
}

/**
 * What this gateway knows of the buses it lost: per device, the rounds in which it could not have
 * heard it. Changes wait in `dirty` until the next lease renewal writes them, before it vouches for the
 * rounds they concern (src/domain/bus-losses.ts has the rule).
 */
export function createBusLossLog(deps: { readonly round: () => number; readonly now?: () => number }) {
  const now = deps.now ?? Date.now;
  const entries = new Map<string, Entry>();
  const dirty = new Set<string>();

  const log = {
    /** A change the buses reported (DeviceBusesDeps.onBus). */
    apply(change: BusChange, deviceIds: readonly string[]): void {
      if (change === 'lost') log.lost(deviceIds);
      else if (change === 'restored') log.restored(deviceIds);
      else if (change === 'opened') for (const id of deviceIds) log.opened(id);
      else for (const id of deviceIds) log.forget(id);
    },

    /** These devices' buses dropped now (the round open now is lost for them). */
    lost(deviceIds: readonly string[]): void {
      const round = deps.round();
      for (const id of deviceIds) {
        let e = entries.get(id);
        if (!e) entries.set(id, (e = { losses: [], lostAt: [] }));
        if (openLoss(e, round, now())) dirty.add(id);
      }
    },

    /** These devices' buses are open again (the round open now may have been lost too). */
    restored(deviceIds: readonly string[]): void {
      const round = deps.round();
      for (const id of deviceIds) {
        const e = entries.get(id);
        if (e && closeLoss(e, round)) dirty.add(id);
      }
    },

    /**
     * This gateway opened the device's bus for the first time: what an earlier holder wrote of it
     * (an open loss, if it crashed while the bus was down) is replaced by what this one knows.
     */
    opened(deviceId: string): void {
      if (!entries.has(deviceId)) dirty.add(deviceId);
    },

    /** A device gone from this gateway (deleted, or its shard handed over): nothing kept of it. */
    forget(deviceId: string): void {
      entries.delete(deviceId);
      dirty.delete(deviceId);
    },

    /** The changes to write, taken; `retake` them when the write failed. */
    take(): Map<string, BusLoss[]> {
      const out = new Map<string, BusLoss[]>();
      for (const id of dirty) out.set(id, [...(entries.get(id)?.losses ?? [])]);
      dirty.clear();
      return out;
    },
    retake(deviceIds: Iterable<string>): void {
      for (const id of deviceIds) dirty.add(id);
    },

    /** Of these devices, those whose bus is unstable now (lost too often lately). */
    unstable(deviceIds: Iterable<string>): string[] {
      const t = now();
      return [...deviceIds].filter((id) => {
        const e = entries.get(id);
        return e !== undefined && isUnstable(e.lostAt, t);
      });
    },
  };
  return log;
}
export type BusLossLog = ReturnType<typeof createBusLossLog>;
