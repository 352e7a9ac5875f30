/**
 * One numbered stream followed in order: every event verified, applied once and in `seq` order, any
 * gap filled from the service's feed before what comes after it. Live events (a Moth frame, an SSE
 * message) are offered as they come; whatever their source loses, the feed has.
 */

/** A page of a feed: `GET /events?after=` or `GET /devices/:id/commands?after=`. */
export interface FeedPage {
  readonly stream: string;
  readonly events: Record<string, unknown>[];
  /** Where to ask from next. */
  readonly last: number;
}

/** Where the number of the last event applied is kept, so a restart resumes after it. */
export interface CursorStore {
  load(): number | undefined | Promise<number | undefined>;
  save(seq: number): void | Promise<void>;
}

export interface FollowerOptions<E> {
  /** The stream followed: `client`, or `device:<id>` for a robot's commands. */
  readonly stream: string;
  readonly fetchPage: (after: number) => Promise<FeedPage>;
  /** Whether the event was signed by the service (see KeySet). */
  readonly verify: (event: Record<string, unknown>) => Promise<boolean>;
  /** Whether the event is one to take at all (a robot: its own id). Default: all of the stream. */
  readonly accept?: (event: Record<string, unknown>) => boolean;
  readonly apply: (event: E) => void | Promise<void>;
  readonly cursor?: CursorStore;
}

/** What a follower refused or skipped, for whoever watches it. */
export interface FollowerCounts {
  /** Not signed by the service, or of another stream. */
  refused: number;
  /** Already applied (Moth and the feed both brought it, or a replay). */
  duplicates: number;
  /** Events fetched from the feed because a live source skipped them. */
  filled: number;
}

export class StreamFollower<E> {
  readonly counts: FollowerCounts = { refused: 0, duplicates: 0, filled: 0 };
  readonly #o: FollowerOptions<E>;
  #last = 0;
  #loaded: Promise<void> | undefined;
  // One offer or catch-up at a time: events are applied in order, never two at once.
  #turn: Promise<unknown> = Promise.resolve();

  constructor(options: FollowerOptions<E>) {
    this.#o = options;
  }

  /** The number of the last event applied (0 before the first). */
  get last(): number {
    return this.#last;
  }

  /** Reads the stored cursor; offers and catch-ups wait for it. */
  load(): Promise<void> {
    this.#loaded ??= (async () => {
      this.#last = (await this.#o.cursor?.load()) ?? 0;
    })();
    return this.#loaded;
  }

  /** A live event: applied after every event before it (fetched from the feed when missing). */
  offer(event: Record<string, unknown>): Promise<void> {
    return this.#inTurn(async () => {
      if (!(await this.#valid(event))) return;
      const seq = event.seq as number;
      if (seq <= this.#last) {
        this.counts.duplicates++;
        return;
      }
      if (seq > this.#last + 1) await this.#fill(seq);
      if (seq > this.#last) await this.#apply(event);
    });
  }

  /** Fetches and applies everything after the last event applied: on (re)connecting, and now and then. */
  catchUp(): Promise<void> {
    return this.#inTurn(() => this.#fill(Infinity));
  }

  #inTurn(step: () => Promise<void>): Promise<void> {
    const run = this.#turn.then(async () => {
      await this.load();
      await step();
    });
    this.#turn = run.catch(() => {});
    return run;
  }

  /** Applies the feed's events after the last applied, up to (not including) `before`. */
  async #fill(before: number): Promise<void> {
    for (;;) {
      const page = await this.#o.fetchPage(this.#last);
      let applied = false;
      for (const event of page.events) {
        const seq = event.seq as number;
        if (seq >= before) return;
        if (seq <= this.#last || !(await this.#valid(event))) continue;
        this.counts.filled++;
        await this.#apply(event);
        applied = true;
      }
      if (!applied) return;
    }
  }

  async #valid(event: Record<string, unknown>): Promise<boolean> {
    const ok =
      event.stream === this.#o.stream &&
      Number.isSafeInteger(event.seq) &&
      (event.seq as number) > 0 &&
      (this.#o.accept?.(event) ?? true) &&
      (await this.#o.verify(event));
    if (!ok) this.counts.refused++;
    return ok;
  }

  async #apply(event: Record<string, unknown>): Promise<void> {
    await this.#o.apply(event as E);
    this.#last = event.seq as number;
    await this.#o.cursor?.save(this.#last);
  }
}
