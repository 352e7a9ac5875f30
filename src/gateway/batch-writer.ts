import type { Logger } from '../logger';

/** Batches waiting to be written beyond which the writer is behind (a round's first heartbeats come in a burst). */
const MAX_BATCHES_IN_FLIGHT = 32;
/**
 * Batches written at once: Redis runs one script at a time, but the next ones already on the wire
 * keep it busy while we parse an answer and read more frames (3 measured best in `npm run bench`).
 * Order between batches does not matter (a device's heard round only ever goes up).
 */
const WRITERS = 3;

export interface BatchWriterOptions<T> {
  /** What a batch is, in the log line of a failed write. */
  readonly name: string;
  /** Writes one batch; a failure is logged here (the write says what it lost). */
  readonly write: (items: T[]) => Promise<void>;
  readonly maxBatch: number;
  /** The longest an item waits for its batch to fill. */
  readonly maxDelayMs: number;
  /** What a flush waits for first, if anything: items still on their way in (proofs awaiting keys). */
  readonly arriving?: () => Promise<void> | undefined;
  /**
   * Called with true when the writer falls behind (stop reading), false once it caught up. Without
   * it a flood would queue in memory without bound.
   */
  readonly onBackpressure?: (behind: boolean) => void;
  readonly logger: Logger;
}

/**
 * Items gathered into batches (full, or after `maxDelayMs`) and written WRITERS at a time. Modes:
 * `flowing`, and `behind` once more than MAX_BATCHES_IN_FLIGHT batches wait, until all but one are
 * written; each change is told to `onBackpressure`.
 */
export function createBatchWriter<T>(options: BatchWriterOptions<T>) {
  let batch: T[] = [];
  let timer: NodeJS.Timeout | undefined;
  const writers: Promise<void>[] = Array.from({ length: WRITERS }, () => Promise.resolve());
  let next = 0;
  let queued = 0;
  let mode: 'flowing' | 'behind' = 'flowing';
  const become = (to: typeof mode) => {
    if (mode === to) throw new Error(`batch writer: already ${to}`);
    mode = to;
    options.onBackpressure?.(to === 'behind');
  };

  const writeOne = (items: T[]) =>
    options
      .write(items)
      .catch((err: unknown) => {
        options.logger.error({ err: (err as Error).message }, `${options.name} failed`);
      })
      .finally(() => {
        queued--;
        if (mode === 'behind' && queued <= 1) become('flowing');
      });

  /** Starts writing the current batch; resolves when every batch started so far is written. */
  function flush(): Promise<void> {
    const arriving = options.arriving?.();
    if (arriving) return arriving.then(flush);
    clearTimeout(timer);
    timer = undefined;
    if (batch.length > 0) {
      const items = batch;
      batch = [];
      if (++queued > MAX_BATCHES_IN_FLIGHT && mode === 'flowing') become('behind');
      const slot = next++ % WRITERS;
      writers[slot] = writers[slot]!.then(() => writeOne(items));
    }
    return Promise.all(writers).then(() => {});
  }

  return {
    add(item: T): void {
      batch.push(item);
      if (batch.length >= options.maxBatch) void flush();
      else timer ??= setTimeout(() => void flush(), options.maxDelayMs);
    },
    flush,
    mode: () => mode,
  };
}
