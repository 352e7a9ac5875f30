import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { toBuffer } from './frames';

/**
 * A Moth-compatible hub for development and tests, behaving as TeamGRIT's Moth Lite was observed to:
 * `/pang/ws/pub|sub|meb`, instant channels, source/track separation, frames relayed byte for byte
 * (text stays text, binary stays binary), a text frame kept as the Track's MIME description and
 * replayed to later joiners, meb delivering to every member but the sender, one publisher per track
 * unless `style=multi`, the channel key, the idle timeout, no pong answers, errors as a dropped TCP
 * connection (1006), and lossy bursts: each sender's frames pass through a small ring polled every
 * few milliseconds, so frames sent back to back are mostly lost while paced frames all arrive.
 */
export interface HubOptions {
  readonly port?: number;
  readonly host?: string;
  /** When set, every connection must carry `key=<this>`. */
  readonly key?: string;
  /** Frames kept per sender between two polls (Moth Lite: about 2). 0 disables the loss model. */
  readonly ringCapacity?: number;
  /** Poll period of the rings, ms. */
  readonly pollMs?: number;
}

type Role = 'pub' | 'sub' | 'meb';

interface Member {
  readonly ws: WebSocket;
  readonly role: Role;
  readonly track: TrackState;
}

interface Frame {
  readonly data: Buffer;
  readonly binary: boolean;
}

interface TrackState {
  readonly id: string;
  readonly members: Set<Member>;
  mime?: Frame;
  /** Frames waiting for the next poll, per sender. */
  readonly rings: Map<Member, Frame[]>;
  timer?: NodeJS.Timeout;
}

const XID = /^[0-9a-v]{20}$/;

export interface HubStats {
  relayed: number;
  droppedInRing: number;
  rejected: number;
}

export class MothHub {
  private readonly tracks = new Map<string, TrackState>();
  private readonly wss = new WebSocketServer({
    noServer: true,
    autoPong: false,
    maxPayload: 16 * 1024 * 1024,
  });
  private server?: Server;
  private readonly ringCapacity: number;
  private readonly pollMs: number;
  readonly stats: HubStats = { relayed: 0, droppedInRing: 0, rejected: 0 };

  constructor(private readonly options: HubOptions = {}) {
    this.ringCapacity = options.ringCapacity ?? 2;
    this.pollMs = options.pollMs ?? 4;
  }

  /** Listens; resolves with the `ws://` base URL. */
  async start(): Promise<string> {
    const server = createServer((_req, res) => {
      res.statusCode = 404;
      res.end();
    });
    server.on('upgrade', (req, socket, head) => {
      const accepted = this.accept(req);
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        if (accepted) return this.join(ws, accepted);
        // Moth says nothing: it drops the TCP connection (the client sees 1006).
        this.stats.rejected++;
        ws.terminate();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () => resolve());
    });
    this.server = server;
    const { port } = server.address() as AddressInfo;
    return `ws://${this.options.host ?? '127.0.0.1'}:${port}`;
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  /** Drops every connection (as a crashed or restarted hub would) and stops listening. */
  async stop(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    for (const t of this.tracks.values()) clearInterval(t.timer);
    this.tracks.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Number of members on a channel's track (for tests). */
  members(channelName: string, source = 'base', track = 'base'): number {
    return this.tracks.get(`instant:${channelName}/${source}/${track}`)?.members.size ?? 0;
  }

  private accept(
    req: IncomingMessage,
  ): { role: Role; trackId: string; multi: boolean; timeoutMs: number } | null {
    const url = new URL(req.url ?? '/', 'http://hub');
    const role = /^\/pang\/ws\/(pub|sub|meb)$/.exec(url.pathname)?.[1] as Role | undefined;
    if (!role) return null;
    const q = url.searchParams;
    const channel = q.get('channel');
    let channelId: string;
    if (channel === 'instant') {
      const name = q.get('name');
      if (!name) return null;
      channelId = `instant:${name}`;
    } else if (channel && XID.test(channel)) {
      channelId = `xid:${channel}`;
    } else return null;
    if (this.options.key !== undefined && q.get('key') !== this.options.key) return null;
    const timeout = Number(q.get('timeout') ?? 30);
    if (!Number.isFinite(timeout) || timeout <= 0) return null;
    const source = q.get('source') ?? 'base';
    const track = q.get('track') ?? 'video';
    const trackId = `${channelId}/${source}/${track}`;
    const multi = q.get('style') === 'multi';
    if (role === 'pub' && !multi) {
      const existing = this.tracks.get(trackId);
      if (existing && [...existing.members].some((m) => m.role === 'pub')) return null;
    }
    return { role, trackId, multi, timeoutMs: timeout * 1000 };
  }

  private join(ws: WebSocket, a: { role: Role; trackId: string; timeoutMs: number }) {
    let track = this.tracks.get(a.trackId);
    if (!track) {
      track = { id: a.trackId, members: new Set(), rings: new Map() };
      this.tracks.set(a.trackId, track);
    }
    const member: Member = { ws, role: a.role, track };
    track.members.add(member);
    if (track.mime && a.role !== 'pub') ws.send(track.mime.data, { binary: track.mime.binary });

    // Idle timeout: any frame from the client (pings included) keeps the connection; none answered.
    let idle: NodeJS.Timeout;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => ws.terminate(), a.timeoutMs);
    };
    arm();
    ws.on('ping', arm);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      arm();
      if (member.role === 'sub') return;
      const frame = { data: toBuffer(data), binary: isBinary };
      if (!isBinary) track.mime = frame;
      this.enqueue(track, member, frame);
    });
    ws.on('close', () => {
      clearTimeout(idle);
      track.members.delete(member);
      track.rings.delete(member);
      if (track.members.size === 0) {
        clearInterval(track.timer);
        this.tracks.delete(track.id);
      }
    });
    ws.on('error', () => ws.terminate());
  }

  private enqueue(track: TrackState, sender: Member, frame: Frame) {
    if (this.ringCapacity === 0) {
      this.deliver(track, sender, frame);
      return;
    }
    let ring = track.rings.get(sender);
    if (!ring) track.rings.set(sender, (ring = []));
    ring.push(frame);
    if (ring.length > this.ringCapacity) {
      ring.shift();
      this.stats.droppedInRing++;
    }
    track.timer ??= setInterval(() => this.poll(track), this.pollMs);
  }

  private poll(track: TrackState) {
    if (track.rings.size === 0) {
      clearInterval(track.timer);
      track.timer = undefined;
      return;
    }
    const rings = [...track.rings];
    track.rings.clear();
    for (const [sender, frames] of rings) for (const frame of frames) this.deliver(track, sender, frame);
  }

  private deliver(track: TrackState, sender: Member, frame: Frame) {
    for (const m of track.members) {
      if (m === sender) continue;
      if (sender.role === 'pub' && m.role !== 'sub') continue;
      if (m.ws.readyState !== m.ws.OPEN) continue;
      m.ws.send(frame.data, { binary: frame.binary });
      this.stats.relayed++;
    }
  }
}
