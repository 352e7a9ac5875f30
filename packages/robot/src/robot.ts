import { EventEmitter } from 'node:events';
import {
  KeySet,
  StreamFollower,
  parseFrame,
  type CursorStore,
  type FeedPage,
  type FollowerCounts,
} from '@rollcall/client';
import WebSocket from 'ws';
import { refusal, type Credentials } from './credentials.ts';
import { proof } from './proofs.ts';

export interface RobotOptions {
  /** rollcall's base URL (task reports, the commands feed, the signing keys). */
  readonly api: string;
  /** Moth's base URL, e.g. `ws://moth.plant.example:8276` (default: the one its registration gave). */
  readonly moth?: string;
  readonly credentials: Credentials;
  /** `v1` sends the token in each heartbeat (as deployed robots do); `v2` a proof per round. */
  readonly protocol?: 'v1' | 'v2';
  /** Where the last command acted on is kept (`fileCursor(path)` across restarts). Default: memory. */
  readonly commandsCursor?: CursorStore;
  /** How often the commands feed is read for a command Moth lost (default 30 s; 0: on reconnect only). */
  readonly pollCommandsMs?: number;
  /** Wait before answering a HEALTHCHECK (simulators; a robot answers at once). */
  readonly answerDelayMs?: () => number;
}

/** A task command (`TASK_REGISTERED` or `TASK_ABORTED`), verified, for this robot, taken once. */
export interface Command {
  readonly type: 'TASK_REGISTERED' | 'TASK_ABORTED';
  readonly seq: number;
  readonly task_id: string;
  readonly action_name: string;
  readonly payload?: Record<string, unknown>;
  readonly occurredAt: string;
  readonly [field: string]: unknown;
}

/** Why the service refuses this robot's heartbeats (told on its bus, signed). */
export interface Refusal {
  readonly code: 'UNKNOWN_TOKEN' | 'WRONG_BUS' | 'DOWNGRADE' | (string & {});
  readonly occurredAt: string;
}

export interface RobotEvents {
  /** On its bus (again). */
  open: [];
  /** Off its bus; it comes back by itself unless stopped. */
  close: [];
  healthcheck: [round: number];
  command: [command: Command];
  refused: [refusal: Refusal];
  /** Every JSON frame heard on the bus, as parsed (diagnostics). */
  frame: [message: Record<string, unknown>];
  /** A request or a command handler failed (the robot carries on). */
  error: [error: Error];
}

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** A session open this long resets the backoff; shorter ones are failures (Moth refusing at once). */
const STABLE_MS = 10_000;
/** Pings keep the session past Moth's 30 s idle timeout: Moth drops a quiet session without a word. */
const PING_MS = 10_000;

/**
 * A robot on rollcall: on its own bus, answering each HEALTHCHECK, taking its task commands once and
 * in order (verified, every gap filled from its commands feed), back on its bus by itself after
 * any loss, with jittered backoff.
 */
export class Robot extends EventEmitter<RobotEvents> {
  /** While true it hears HEALTHCHECKs and does not answer them (a simulator's hung robot). */
  muted = false;
  heartbeatsSent = 0;
  readonly #o: RobotOptions;
  readonly #keys: KeySet;
  readonly #commands: StreamFollower<Command>;
  #ws: WebSocket | undefined;
  #running = false;
  #failures = 0;
  #reconnect: ReturnType<typeof setTimeout> | undefined;
  #poll: ReturnType<typeof setInterval> | undefined;
  #lastHealthcheck: { round: number; nonce: string | undefined } | undefined;

  constructor(options: RobotOptions) {
    super();
    if (!(options.moth ?? options.credentials.moth))
      throw new TypeError('no Moth URL: give `moth`, or register with a service that names it');
    this.#o = options;
    this.#keys = new KeySet({ api: options.api });
    const { id } = options.credentials;
    this.#commands = new StreamFollower<Command>({
      stream: `device:${id}`,
      fetchPage: (after) => this.#commandsPage(after),
      verify: (event) => this.#keys.verify(event),
      accept: (event) => event.deviceId === id,
      apply: (command) => void this.emit('command', command),
      ...(options.commandsCursor ? { cursor: options.commandsCursor } : {}),
    });
  }

  get id(): string {
    return this.#o.credentials.id;
  }

  /** Commands refused (unsigned, not its own), seen again, and fetched because Moth lost them. */
  get commandCounts(): Readonly<FollowerCounts> {
    return this.#commands.counts;
  }

  get credentials(): Credentials {
    return this.#o.credentials;
  }

  /** Whether it is on its bus now. */
  get open(): boolean {
    return this.#ws?.readyState === WebSocket.OPEN;
  }

  /** Joins its bus and stays on it until `stop()` or `goodbye()`. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#join();
    const every = this.#o.pollCommandsMs ?? 30_000;
    if (every > 0) this.#poll = setInterval(() => this.#catchUp(), every);
  }

  /** Leaves on purpose: rollcall disconnects it at once (reason `PLANNED`), no misses waited for. */
  async goodbye(): Promise<void> {
    const last = this.#lastHealthcheck;
    const { id, token } = this.#o.credentials;
    const body =
      this.#o.protocol === 'v2' && last?.nonce !== undefined
        ? {
            type: 'GOODBYE',
            deviceId: id,
            round: last.round,
            proof: proof(token, last.round, last.nonce, 'goodbye'),
          }
        : { type: 'GOODBYE', token };
    const ws = this.#ws;
    if (ws?.readyState === WebSocket.OPEN)
      await new Promise<void>((resolve) => ws.send(this.#frame(body), () => resolve()));
    await this.stop();
  }

  /** Leaves its bus (rollcall counts it missing from the next rounds) and stops. */
  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#reconnect);
    clearInterval(this.#poll);
    const ws = this.#ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close();
      setTimeout(() => (ws.terminate(), resolve()), 1000).unref();
    });
  }

  /** Reports on a task it was given: `start`, then `complete` or `reject`; or `abort` it. */
  async report(
    taskId: string,
    report: 'start' | 'complete' | 'reject' | 'abort',
    body: object = {},
  ): Promise<unknown> {
    const res = await fetch(new URL(`/tasks/${encodeURIComponent(taskId)}/${report}`, this.#o.api), {
      method: 'POST',
      headers: { authorization: `Bearer ${this.#o.credentials.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw await refusal(res);
    return res.json();
  }

  #join(): void {
    const ws = new WebSocket(new URL(this.#o.credentials.busPath, this.#o.moth ?? this.#o.credentials.moth));
    this.#ws = ws;
    let openedAt: number | undefined;
    let ping: ReturnType<typeof setInterval> | undefined;
    ws.on('open', () => {
      openedAt = performance.now();
      ping = setInterval(() => ws.ping(), PING_MS);
      this.emit('open');
      this.#catchUp();
    });
    ws.on('message', (data: Buffer) => this.#heard(data));
    ws.on('error', () => {});
    ws.on('close', () => {
      clearInterval(ping);
      if (openedAt !== undefined) this.emit('close');
      const stable = openedAt !== undefined && performance.now() - openedAt >= STABLE_MS;
      this.#failures = stable ? 0 : this.#failures + 1;
      if (!this.#running) return;
      // Full jitter: a fleet cut off together (a Moth restart) does not come back together.
      const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(this.#failures, 10));
      this.#reconnect = setTimeout(() => this.#join(), Math.random() * ceiling);
    });
  }

  #heard(data: Buffer): void {
    const msg = parseFrame(data);
    if (!msg) return;
    this.emit('frame', msg);
    if (msg.type === 'HEALTHCHECK' && typeof msg.round === 'number') this.#healthcheck(msg.round, msg.nonce);
    else if (msg.stream === `device:${this.id}`)
      this.#commands.offer(msg).catch((err: unknown) => this.#failed(err));
    else if (msg.type === 'REFUSED' && msg.deviceId === this.id) void this.#refused(msg);
  }

  #healthcheck(round: number, nonce: unknown): void {
    this.#lastHealthcheck = { round, nonce: typeof nonce === 'string' ? nonce : undefined };
    this.emit('healthcheck', round);
    const answer = () => {
      const ws = this.#ws;
      if (this.muted || ws?.readyState !== WebSocket.OPEN) return;
      ws.send(this.#frame(this.#heartbeat(round, nonce)));
      this.heartbeatsSent++;
    };
    const delay = this.#o.answerDelayMs?.() ?? 0;
    if (delay > 0) setTimeout(answer, delay);
    else answer();
  }

  #heartbeat(round: number, nonce: unknown): object {
    const { id, token } = this.#o.credentials;
    if (this.#o.protocol === 'v2' && typeof nonce === 'string')
      return { type: 'HEARTBEAT', deviceId: id, round, proof: proof(token, round, nonce, 'heartbeat') };
    return { type: 'HEARTBEAT', token };
  }

  /** JSON goes as a binary frame: Moth keeps a text frame and replays it to every later joiner. */
  #frame(body: object): Buffer {
    return Buffer.from(JSON.stringify(body));
  }

  async #refused(msg: Record<string, unknown>): Promise<void> {
    try {
      if (await this.#keys.verify(msg))
        this.emit('refused', { code: msg.code as Refusal['code'], occurredAt: String(msg.occurredAt) });
    } catch (err) {
      this.#failed(err);
    }
  }

  #catchUp(): void {
    this.#commands.catchUp().catch((err: unknown) => this.#failed(err));
  }

  async #commandsPage(after: number): Promise<FeedPage> {
    const url = new URL(`/devices/${this.id}/commands?after=${after}&limit=1000`, this.#o.api);
    const res = await fetch(url, { headers: { authorization: `Bearer ${this.#o.credentials.token}` } });
    if (!res.ok) throw await refusal(res);
    return (await res.json()) as FeedPage;
  }

  #failed(err: unknown): void {
    // An 'error' event with no listener would throw: a robot keeps running whatever its network does.
    if (this.listenerCount('error') > 0)
      this.emit('error', err instanceof Error ? err : new Error(String(err)));
  }
}
