import type { RollcallEvent } from './events.ts';
import { StreamFollower, type CursorStore, type FeedPage, type FollowerCounts } from './follow.ts';
import { KeySet, parseFrame } from './signatures.ts';
import { sseMessages } from './sse.ts';

export interface EventClientOptions {
  /** The service's base URL, e.g. `https://rollcall.plant.example`. */
  readonly api: string;
  /** An operator token, sent as `Authorization: Bearer`. */
  readonly token?: string;
  /** Headers of every request instead (or as well). */
  readonly headers?: Record<string, string>;
  /** `fetch` credentials mode (a page signed in by HTTP Basic: `same-origin`). */
  readonly credentials?: RequestCredentials;
  /** Where the feed and its live stream are (default `/events` and `/events/stream`). */
  readonly paths?: { readonly feed: string; readonly stream: string };
  /**
   * Where events come from live: the service's SSE stream (default), or the Moth client channel
   * (`{ moth: 'ws://moth:8276/pang/ws/meb?channel=...&track=base' }`, the path with its key), where
   * frames may be lost: every gap is filled from the feed, and the feed is read every `pollMs` for
   * a last event Moth lost with nothing after it.
   */
  readonly source?: 'sse' | { readonly moth: string };
  readonly pollMs?: number;
  /** Where the last number applied is kept (a restart resumes after it). Default: memory, from 0. */
  readonly cursor?: CursorStore;
  /**
   * Check every event's signature (default true). Web Crypto needs a secure context in a browser;
   * a page reading its own service over the same authenticated connection may leave it off.
   */
  readonly verify?: boolean;
  readonly onEvent: (event: RollcallEvent) => void | Promise<void>;
  /** A source lost or a request failed; the client tries again by itself. */
  readonly onError?: (error: Error) => void;
  readonly fetch?: typeof fetch;
  /** A WebSocket class for the Moth source (default the global one; `ws` in Node.js sends pings). */
  readonly WebSocket?: new (url: string) => WebSocket;
}

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** Pings keep a Moth session past its 30 s idle timeout (where the WebSocket class can send them). */
const MOTH_PING_MS = 10_000;

/**
 * Follows rollcall's client events: each one once, verified, in `seq` order, with nothing missed.
 * Live from the SSE stream or the Moth channel; whatever a source loses or a restart skips comes from
 * `GET /events`.
 */
export class EventClient {
  readonly #o: EventClientOptions;
  readonly #follower: StreamFollower<RollcallEvent>;
  readonly #fetch: typeof fetch;
  #running = false;
  #abort: AbortController | undefined;
  #failures = 0;
  #stopped: Promise<void> = Promise.resolve();

  constructor(options: EventClientOptions) {
    this.#o = options;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    const keys = new KeySet({ api: options.api, fetch: this.#fetch });
    this.#follower = new StreamFollower<RollcallEvent>({
      stream: 'client',
      fetchPage: (after) => this.#page(after),
      verify: options.verify === false ? async () => true : (event) => keys.verify(event),
      apply: options.onEvent,
      ...(options.cursor ? { cursor: options.cursor } : {}),
    });
  }

  /** The number of the last event applied. */
  get last(): number {
    return this.#follower.last;
  }

  get counts(): Readonly<FollowerCounts> {
    return this.#follower.counts;
  }

  /** Starts following; runs until `stop()`, reconnecting by itself. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#stopped = this.#run();
  }

  /** Stops, and resolves once nothing more will be applied. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#abort?.abort();
    await this.#stopped;
  }

  /** Applies whatever the feed has after the last event applied, now. */
  catchUp(): Promise<void> {
    return this.#follower.catchUp();
  }

  async #run(): Promise<void> {
    while (this.#running) {
      this.#abort = new AbortController();
      try {
        await this.#follower.load();
        if (this.#o.source && this.#o.source !== 'sse') await this.#followMoth(this.#o.source.moth);
        else await this.#followSse();
      } catch (err) {
        if (this.#running) this.#failed(err);
      }
      if (this.#running) await this.#backoff();
    }
  }

  async #followSse(): Promise<void> {
    const url = new URL(this.#o.paths?.stream ?? '/events/stream', this.#o.api);
    const res = await this.#request(url, { 'Last-Event-ID': String(this.#follower.last) });
    for await (const message of sseMessages(res.body!)) {
      this.#failures = 0;
      const event = parseFrame(message.data);
      if (event) await this.#follower.offer(event);
      else this.#follower.counts.refused++;
    }
  }

  /** Moth for speed, the feed for what Moth lost: on every (re)connect, on a gap, and every `pollMs`. */
  async #followMoth(url: string): Promise<void> {
    const Socket = this.#o.WebSocket ?? WebSocket;
    const ws = new Socket(url);
    ws.binaryType = 'arraybuffer';
    const timers: ReturnType<typeof setInterval>[] = [];
    let failure: Error | undefined;
    let turns = Promise.resolve();
    // Frames are taken one at a time, in the order they came; a failed fetch ends this connection.
    const inTurn = (step: () => Promise<void>) =>
      (turns = turns.then(step).catch((err: unknown) => {
        failure ??= err instanceof Error ? err : new Error(String(err));
        ws.close();
      }));
    const closed = new Promise<void>((resolve) => {
      ws.onopen = () => {
        this.#failures = 0;
        void inTurn(() => this.#follower.catchUp());
        timers.push(setInterval(() => void inTurn(() => this.#follower.catchUp()), this.#o.pollMs ?? 5000));
        const ping = (ws as unknown as { ping?: () => void }).ping;
        if (ping) timers.push(setInterval(() => ping.call(ws), MOTH_PING_MS));
      };
      ws.onmessage = (m: MessageEvent) => {
        const event = parseFrame(typeof m.data === 'string' ? m.data : new Uint8Array(m.data as ArrayBuffer));
        if (event?.stream === 'client') void inTurn(() => this.#follower.offer(event));
      };
      ws.onerror = () => (failure ??= new Error(`Moth: the client channel at ${new URL(url).host} failed`));
      ws.onclose = () => resolve();
      this.#abort!.signal.addEventListener('abort', () => ws.close());
    });
    try {
      await closed;
      await turns;
    } finally {
      for (const t of timers) clearInterval(t);
    }
    if (failure) throw failure;
  }

  async #page(after: number): Promise<FeedPage> {
    const url = new URL(this.#o.paths?.feed ?? '/events', this.#o.api);
    url.searchParams.set('after', String(after));
    url.searchParams.set('limit', '1000');
    return (await (await this.#request(url, {})).json()) as FeedPage;
  }

  async #request(url: URL, headers: Record<string, string>): Promise<Response> {
    const res = await this.#fetch(url, {
      headers: {
        ...(this.#o.token ? { authorization: `Bearer ${this.#o.token}` } : {}),
        ...this.#o.headers,
        ...headers,
      },
      ...(this.#o.credentials ? { credentials: this.#o.credentials } : {}),
      signal: this.#abort?.signal ?? null,
    });
    if (!res.ok) throw new Error(`GET ${url.pathname}: HTTP ${res.status}`);
    return res;
  }

  #failed(err: unknown): void {
    this.#failures++;
    this.#o.onError?.(err instanceof Error ? err : new Error(String(err)));
  }

  /** Full jitter: a fleet of clients cut off together does not come back together. */
  async #backoff(): Promise<void> {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(this.#failures, 10));
    const wait = Math.random() * ceiling;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, wait);
      this.#abort?.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()));
    });
  }
}
