import { WebSocket } from 'ws';
import { heartbeatProof } from '../domain/proofs';

export interface SimulatedDeviceOptions {
  /** `ws://host:port` of Moth. */
  readonly mothUrl: string;
  /** `channels.deviceManagement` from the registration response. */
  readonly channelPath: string;
  readonly token: string;
  /** Delay before answering a HEALTHCHECK, ms (a function for random delays). */
  readonly replyDelayMs?: number | (() => number);
  /** Echo the round number (deployed robots do not). */
  readonly echoRound?: boolean;
  /** Answer with a text frame instead of binary. */
  readonly textFrames?: boolean;
  /** Keep every message received in `received` (default true; a large fleet may not want to). */
  readonly keepReceived?: boolean;
  /** Called with every JSON message received (a task command, a HEALTHCHECK, ...). */
  readonly onMessage?: (msg: Record<string, unknown>) => void;
  /**
   * Protocol v2: answer each HEALTHCHECK with a proof for its round and nonce instead of the token
   * (`deviceId` is then required). Default v1, as deployed robots.
   */
  readonly protocol?: 'v1' | 'v2';
  readonly deviceId?: string;
}

/**
 * A device as TeamGRIT's deployed robots behave on the health-check connection: every frame parsed as
 * JSON; on HEALTHCHECK it answers exactly `{"type":"HEARTBEAT","token":"..."}` as a binary frame (or,
 * speaking v2, `{"type":"HEARTBEAT","deviceId","round","proof"}`).
 */
export class SimulatedDevice {
  /** While true the device hears HEALTHCHECKs but does not answer (a hung robot). */
  silent = false;
  heartbeatsSent = 0;
  /** Frames it received that carried another device's token (a shared bus shows them all). */
  foreignTokens = 0;
  /** When each HEALTHCHECK arrived, by round. */
  readonly healthchecksAt = new Map<number, number>();
  lastHeartbeatAt: number | null = null;
  readonly received: Record<string, unknown>[] = [];
  /** Called with every frame as it came (a signature is checked over these bytes). */
  onRawFrame?: (frame: Buffer) => void;
  private ws?: WebSocket;
  private lastHealthcheck: { round: number; nonce: string } | undefined;
  private closed = false;

  constructor(private readonly options: SimulatedDeviceOptions) {}

  async connect(): Promise<void> {
    this.closed = false;
    const ws = new WebSocket(new URL(this.options.channelPath, this.options.mothUrl).toString());
    this.ws = ws;
    ws.on('message', (data) => this.onFrame(data as Buffer));
    // A failure to open rejects below; one later closes the socket, which `isOpen` shows.
    ws.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Sends one heartbeat now, as a robot would (a v2 one needs the round and its nonce). */
  heartbeat(round?: number, nonce?: string): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const json = JSON.stringify(this.heartbeatBody(round, nonce));
    ws.send(this.options.textFrames ? json : Buffer.from(json), { binary: !this.options.textFrames });
    this.heartbeatsSent++;
    this.lastHeartbeatAt = Date.now();
  }

  private heartbeatBody(round: number | undefined, nonce: string | undefined): Record<string, unknown> {
    if (this.options.protocol === 'v2' && round !== undefined && nonce !== undefined) {
      const proof = heartbeatProof(this.options.token, round, nonce);
      return { type: 'HEARTBEAT', deviceId: this.options.deviceId, round, proof };
    }
    const body: Record<string, unknown> = { type: 'HEARTBEAT', token: this.options.token };
    if (this.options.echoRound && round !== undefined) body.round = round;
    return body;
  }

  /** Says goodbye (a planned disconnect): with its token, or in v2 with a goodbye proof for the last round heard. */
  goodbye(): void {
    const last = this.lastHealthcheck;
    const body =
      this.options.protocol === 'v2' && last
        ? {
            type: 'GOODBYE',
            deviceId: this.options.deviceId,
            round: last.round,
            proof: heartbeatProof(this.options.token, last.round, last.nonce, 'goodbye'),
          }
        : { type: 'GOODBYE', token: this.options.token };
    this.ws?.send(Buffer.from(JSON.stringify(body)), { binary: true });
    this.silent = true;
  }

  /** Sends raw bytes on the channel (hostile input tests). */
  sendRaw(data: Buffer | string, binary = true): void {
    this.ws?.send(data, { binary });
  }

  async close(): Promise<void> {
    this.closed = true;
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close();
      setTimeout(() => {
        ws.terminate();
        resolve();
      }, 500).unref();
    });
  }

  private onFrame(data: Buffer) {
    this.onRawFrame?.(data);
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.toString('utf8'));
    } catch {
      return; // not JSON: a robot ignores what it cannot read, as deployed ones do
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return;
    const msg = parsed as Record<string, unknown>;
    if (typeof msg.token === 'string' && msg.token !== this.options.token) this.foreignTokens++;
    if (this.options.keepReceived !== false) this.received.push(msg);
    this.options.onMessage?.(msg);
    if (msg.type === 'HEALTHCHECK' && typeof msg.round === 'number') {
      this.healthchecksAt.set(msg.round, Date.now());
      if (typeof msg.nonce === 'string') this.lastHealthcheck = { round: msg.round, nonce: msg.nonce };
    }
    if (msg.type !== 'HEALTHCHECK' || this.silent || this.closed) return;
    const d = this.options.replyDelayMs;
    const delay = typeof d === 'function' ? d() : (d ?? 0);
    const round = typeof msg.round === 'number' ? msg.round : undefined;
    const nonce = typeof msg.nonce === 'string' ? msg.nonce : undefined;
    if (delay <= 0) this.heartbeat(round, nonce);
    else setTimeout(() => !this.silent && this.heartbeat(round, nonce), delay);
  }
}
