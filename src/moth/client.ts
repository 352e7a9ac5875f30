import { EventEmitter } from 'node:events';
import { WebSocket, type RawData } from 'ws';
import { toBuffer } from './frames';
import type { Logger } from '../logger';

export interface MothClientOptions {
  /** Base URL of the Moth server, `ws://host:port` or `wss://host:port`. */
  readonly url: string;
  /** Path and query of the channel, e.g. `/pang/ws/meb?channel=instant&name=x&source=base&track=base`. */
  readonly path: string;
  /** Stream key, sent as `key=` when set. */
  readonly key?: string | undefined;
  /** Minimum gap between two frames we send: Moth loses frames sent back to back. */
  readonly frameGapMs: number;
  /** WebSocket ping period; must be well inside Moth's idle timeout (30 s). Pongs are never expected. */
  readonly pingSeconds: number;
  readonly logger: Logger;
  /** Backoff bounds for reconnects. */
  readonly reconnect?: { readonly minMs: number; readonly maxMs: number };
  /**
   * What the logs call this session instead of its path (a device's bus path names its bus, which
   * is what lets one listen to it: it is not logged).
   */
  readonly label?: string;
  /** Opens and drops logged at debug level (one of thousands of sessions); refusals still warn. */
  readonly quiet?: boolean;
}

export interface MothClientEvents {
  open: [];
  close: [];
  message: [data: Buffer, isBinary: boolean];
}

/** A connection closed this soon after opening was refused by the server (Moth drops, it does not say why). */
const REJECTION_WINDOW_MS = 1000;

/**
 * One Moth session that stays up: reconnects with jittered exponential backoff, pings without
 * expecting pongs, and sends JSON as binary frames only (a text frame would become the Track's MIME
 * description, and one starting with REXT is an extended command), paced by `frameGapMs`.
 */
export class MothClient extends EventEmitter<MothClientEvents> {
  private ws?: WebSocket;
  private stopped = false;
  private attempts = 0;
  private openedAt: number | null = null;
  private pingTimer?: NodeJS.Timeout;
  private reconnectTimer?: NodeJS.Timeout;
  private sendChain: Promise<void> = Promise.resolve();
  private lastSentAt = 0;
  private readonly reconnect: { minMs: number; maxMs: number };

  constructor(private readonly options: MothClientOptions) {
    super();
    const url = new URL(options.url);
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:')
      throw new Error(`MOTH_URL must be ws:// or wss://, got ${url.protocol}`);
    if (!options.path.startsWith('/pang/ws/')) throw new Error(`not a Moth path: ${options.path}`);
    if (options.frameGapMs < 0) throw new Error('frameGapMs must be >= 0');
    this.reconnect = options.reconnect ?? { minMs: 200, maxMs: 10_000 };
  }

  /** When the current session opened (epoch ms), or null while disconnected. */
  get connectedSince(): number | null {
    return this.openedAt;
  }

  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  /** Resolves once open (or rejects after `timeoutMs`). */
  async waitOpen(timeoutMs = 10_000): Promise<void> {
    if (this.isOpen) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('open', onOpen);
        reject(new Error(`Moth session not open after ${timeoutMs} ms`));
      }, timeoutMs);
      const onOpen = () => {
        clearTimeout(timer);
        resolve();
      };
      this.once('open', onOpen);
    });
  }

  /**
   * Sends one JSON message as a binary frame, paced. Rejects when the session is not open: the caller
   * decides whether to retry (events) or to give up (a round's broadcast is then void).
   */
  send(message: unknown): Promise<void> {
    return this.sendEncoded(Buffer.from(JSON.stringify(message), 'utf8'));
  }

  /** Sends a message already encoded (one encoding for every session of a broadcast), paced. */
  sendEncoded(payload: Buffer): Promise<void> {
    const result = this.sendChain.then(() => this.sendNow(payload));
    // The caller gets the failure (`result`); the next message still goes after this one.
    this.sendChain = result.catch(() => {});
    return result;
  }

  private async sendNow(payload: Buffer): Promise<void> {
    const wait = this.lastSentAt + this.options.frameGapMs - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) throw new Error('Moth session is not open');
    await new Promise<void>((resolve, reject) =>
      ws.send(payload, { binary: true }, (err) => (err ? reject(err) : resolve())),
    );
    this.lastSentAt = Date.now();
  }

  /** Stops reading from Moth (the consumer is behind); frames wait in the socket, then in Moth. */
  pause(): void {
    this.ws?.pause();
  }

  resume(): void {
    this.ws?.resume();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.pingTimer);
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close(1000);
      setTimeout(() => {
        ws.terminate();
        resolve();
      }, 1000).unref();
    });
  }

  private log(level: 'info' | 'warn' | 'debug', fields: Record<string, unknown>, msg: string) {
    const where =
      this.options.label === undefined ? { path: this.options.path } : { session: this.options.label };
    this.options.logger[this.options.quiet && level !== 'debug' ? 'debug' : level](
      { ...fields, ...where },
      msg,
    );
  }

  private target(): string {
    const url = new URL(this.options.path, this.options.url);
    if (this.options.key !== undefined) url.searchParams.set('key', this.options.key);
    return url.toString();
  }

  /**
   * Pings every `period`, the first after a random part of it: a gateway opens its thousands of
   * sessions together, and on one clock their pings went out in bursts (9,900 sessions: ~0.5 s of
   * the gateway's CPU within ~3 s of every 10, in which a fleet arriving got its HEALTHCHECKs late).
   */
  private pingEvery(ws: WebSocket, period: number): void {
    const ping = () => {
      if (ws.readyState === WebSocket.OPEN) ws.ping();
      this.pingTimer = setTimeout(ping, period);
    };
    this.pingTimer = setTimeout(ping, Math.random() * period);
  }

  private connect() {
    if (this.stopped) return;
    const ws = new WebSocket(this.target(), { handshakeTimeout: 5000, perMessageDeflate: false });
    this.ws = ws;
    ws.on('open', () => {
      this.openedAt = Date.now();
      this.pingEvery(ws, this.options.pingSeconds * 1000);
      this.log(this.options.quiet ? 'debug' : 'info', {}, 'moth session open');
      this.emit('open');
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      this.emit('message', toBuffer(data), isBinary);
    });
    ws.on('error', (err) => {
      this.log('debug', { err: err.message }, 'moth socket error');
    });
    ws.on('close', (code) => {
      clearTimeout(this.pingTimer);
      const openedAt = this.openedAt;
      this.openedAt = null;
      if (openedAt !== null) {
        this.emit('close');
        if (Date.now() - openedAt < REJECTION_WINDOW_MS && code === 1006) {
          this.log(
            'warn',
            {},
            'moth dropped the session right after opening: rejected (check channel, key and path)',
          );
        } else {
          this.attempts = 0;
          if (!this.stopped) this.log(this.options.quiet ? 'debug' : 'warn', { code }, 'moth session lost');
        }
      }
      if (this.stopped) return;
      const base = Math.min(this.reconnect.maxMs, this.reconnect.minMs * 2 ** this.attempts++);
      const delay = base / 2 + Math.random() * (base / 2);
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    });
  }
}
