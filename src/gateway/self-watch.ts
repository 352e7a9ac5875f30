import { CAUGHT_UP_MARGIN_MS } from '../domain/rounds';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';

/** Why a gateway suspects itself. */
export type Suspicion =
  /** Its event loop ran late past the margin: frames waited unread in its sockets. */
  | 'loop'
  /** It stopped reading its buses (its writes fell behind). */
  | 'backpressure'
  /** What it read took longer than the bound to be written. */
  | 'write'
  /** A write of what it heard, or of a round's opening, failed. */
  | 'failure';

export interface SelfWatchDeps {
  readonly metrics: Pick<Metrics, 'selfSuspicions'>;
  readonly logger: Logger;
  /** Resolves when every frame taken so far is written. */
  readonly flush: () => Promise<void>;
  readonly tickMs?: number;
  /** A flush slower than this is a suspicion, and the gateway does not vouch for that renewal. */
  readonly writeBoundMs?: number;
}

/**
 * A gateway's watch over itself (Lifeguard's self-suspicion; Cassandra refusing to convict after its
 * own pause): an observer that falls behind must not take its own lateness for its robots' silence.
 * It notes when it was last behind (`brokenAt`: no round opened before then counts as heard on its
 * shards) and, at each lease renewal, vouches up to when it has read and written its buses
 * (`vouch`): a round's evaluation waits for that to pass the round's close, else the round is void
 * for its shards.
 *
 * Modes: `on time`, or `behind` (reading paused for backpressure), set by `behind(...)` alone. While
 * behind, every instant is suspect.
 */
export function createSelfWatch(deps: SelfWatchDeps) {
  const tickMs = deps.tickMs ?? 50;
  const writeBoundMs = deps.writeBoundMs ?? 1000;
  let mode: 'on time' | 'behind' = 'on time';
  let brokenAt = 0;
  let lastTick = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const lastLogged = new Map<Suspicion, number>();

  function suspect(reason: Suspicion, details: Record<string, unknown> = {}): void {
    const now = Date.now();
    brokenAt = now;
    deps.metrics.selfSuspicions.inc({ reason });
    // Told once per reason every few seconds: a starved process would otherwise log every tick.
    if (now - (lastLogged.get(reason) ?? 0) > 5000) {
      lastLogged.set(reason, now);
      deps.logger.warn({ reason, ...details }, 'gateway behind its buses: its rounds are void, not misses');
    }
  }

  function tick(): void {
    const now = Date.now();
    const lateMs = now - lastTick - tickMs;
    lastTick = now;
    if (lateMs > CAUGHT_UP_MARGIN_MS) suspect('loop', { lateMs });
  }

  return {
    suspect,
    /** Since when this gateway has not been behind (now, while it is). */
    brokenAt: (): number => (mode === 'behind' ? Date.now() : brokenAt),
    /** Reading paused (true) or resumed (false) for backpressure. */
    behind(isBehind: boolean): void {
      const next = isBehind ? 'behind' : 'on time';
      if (next === mode) return;
      mode = next;
      // On resuming too: frames that waited in the sockets are read now, late.
      suspect('backpressure');
    },
    /**
     * Up to when this gateway has read its buses and written what they carried: every frame taken
     * before now written (within the bound), the loop never late past the margin. Null when it
     * cannot vouch (behind, or the writes too slow).
     */
    vouch: async (): Promise<number | null> => {
      const startedAt = Date.now();
      let bound: NodeJS.Timeout | undefined;
      const written = await Promise.race([
        deps.flush().then(
          () => true,
          () => false,
        ),
        new Promise<false>((resolve) => (bound = setTimeout(() => resolve(false), writeBoundMs))),
      ]).finally(() => clearTimeout(bound));
      if (!written) suspect('write', { boundMs: writeBoundMs });
      if (!written || mode === 'behind') return null;
      return startedAt - CAUGHT_UP_MARGIN_MS;
    },
    start(): void {
      lastTick = Date.now();
      timer ??= setInterval(tick, tickMs);
    },
    stop(): void {
      clearInterval(timer);
      timer = undefined;
    },
  };
}

export type SelfWatch = ReturnType<typeof createSelfWatch>;
