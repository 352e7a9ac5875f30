import type { Logger } from '../logger';

export interface LoopOptions {
  /** Names the loop in its logs. */
  readonly name: string;
  /** One pass; resolves true when more work is waiting (the next pass starts at once). */
  readonly pass: () => Promise<boolean>;
  /** Between passes when nothing woke it. */
  readonly pollMs: number;
  /** The longest wait after failures (the wait doubles with each failure in a row). */
  readonly maxBackoffMs?: number;
  /**
   * A pass starts at least this long after the last one started, unless that one left more work
   * waiting: what comes meanwhile (a storm's commits, a millisecond apart) is taken in one pass.
   */
  readonly gatherMs?: number;
  readonly logger: Logger;
}

/**
 * Runs a pass and tells `succeeded` or `failed` (which answers the failures in a row: the first and
 * every 50th are logged); answers whether more work waits.
 */
async function tryPass(options: LoopOptions, succeeded: () => void, failed: () => number): Promise<boolean> {
  try {
    const more = await options.pass();
    succeeded();
    return more;
  } catch (err) {
    const failures = failed();
    if (failures === 1 || failures % 50 === 0)
      options.logger.warn({ err: (err as Error).message, failures }, `${options.name} failed; will retry`);
    return false;
  }
}

/** Passes at least `gatherMs` apart, unless the last left more work waiting. */
function createGathering(gatherMs: number) {
  let lastStart = 0;
  let lastMore = false;
  return {
    /** Waits out the rest of the gathering, if any; answers whether it waited. */
    async waited(): Promise<boolean> {
      const wait = lastStart + gatherMs - Date.now();
      if (wait <= 0 || lastMore) return false;
      await new Promise((r) => setTimeout(r, wait));
      return true;
    },
    async pass(run: () => Promise<boolean>): Promise<boolean> {
      lastStart = Date.now();
      lastMore = await run();
      return lastMore;
    },
  };
}

/**
 * A background loop: runs its pass again at once while work waits, otherwise after `pollMs` or when
 * woken (`wake`, e.g. by a Postgres notification). A failing pass is logged (the first and every
 * 50th in a row) and retried after an exponential backoff. Modes: stopped, running (in a pass),
 * waiting; `stop` resolves once the pass under way has ended.
 */
export function createLoop(options: LoopOptions) {
  const maxBackoffMs = options.maxBackoffMs ?? 5000;
  const gathering = createGathering(options.gatherMs ?? 0);
  let mode: 'stopped' | 'running' | 'waiting' = 'stopped';
  let done: Promise<void> = Promise.resolve();
  let woken = false;
  let wakeWait: (() => void) | undefined;
  let failures = 0;
  const succeeded = () => (failures = 0);
  const failed = () => ++failures;
  /** Each start runs its own generation: a run still ending after a stop never goes on beside the next. */
  let generation = 0;

  async function run(gen: number): Promise<void> {
    while (mode !== 'stopped' && gen === generation) {
      mode = 'running';
      if ((await gathering.waited()) && ((mode as string) === 'stopped' || gen !== generation)) break;
      woken = false;
      const more = await gathering.pass(() => tryPass(options, succeeded, failed));
      if ((mode as string) === 'stopped' || gen !== generation) break;
      // Again at once when work waits (or it was woken during the pass, by what the pass may not have
      // seen), though after the event loop's next turn: sockets drain, timers run.
      if ((more || woken) && failures === 0) {
        await new Promise((r) => setImmediate(r));
        continue;
      }
      mode = 'waiting';
      const delay =
        failures > 0 ? Math.min(maxBackoffMs, options.pollMs * 2 ** Math.min(failures, 10)) : options.pollMs;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        wakeWait = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wakeWait = undefined;
    }
  }

  return {
    start(): void {
      if (mode !== 'stopped') return;
      mode = 'waiting';
      const previous = done;
      const gen = ++generation;
      done = previous.then(() => run(gen));
    },
    /** Runs a pass now rather than at the next poll (or right after the one under way). */
    wake(): void {
      woken = true;
      if (failures === 0) wakeWait?.();
    },
    /** Runs a pass now even while backing off: what it failed on is back (a session reopened). */
    retryNow(): void {
      woken = true;
      wakeWait?.();
    },
    async stop(): Promise<void> {
      mode = 'stopped';
      wakeWait?.();
      await done;
    },
  };
}

export type Loop = ReturnType<typeof createLoop>;
