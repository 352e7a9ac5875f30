import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { isRegisteredChannelId } from '../domain/channel-ids';
import { DEFAULT_HUB_LIMITS, HubBudget, type BudgetStats, type HubLimits } from './hub-budget';
import { toBuffer } from './frames';

/**
 * A Moth-compatible hub for development and tests that loses, drops and refuses where TeamGRIT's Moth
 * Lite does (measured on v1.1.7.5; see docs/moth.md):
 *
 * - one ring of 20 slots per (channel, source, track), shared by every sender on it; each reader polls
 *   it every 1 ms and, when more than 2 slots behind, jumps to the newest slot and loses the rest;
 * - `meb`: every member's frame to every other meb member, never back to the sender; `pub` frames reach
 *   subs and meb members; `sub` frames reach the pub(s) only with `mode=bundle` on both sides;
 *   `style=multi` lets several pubs share a track, a second pub without it is dropped;
 * - keepalive: pings keep only meb sessions alive; a pub that sends no data, or a sub that receives
 *   none, is dropped at `timeout` (default 30 s) however often it pings; pongs are never sent;
 * - the first joiner of an instant channel sets its key, later joiners must match; a registered
 *   channel (created through Moth's management API, named by a 20-character xid) exists without
 *   members and keeps the key it was created with, and an id that is not registered is refused;
 * - a text frame is the track's MIME, replayed to later joiners; one starting with `REXT` (an
 *   extended command, one kind of which crashes the real server) is dropped and counted;
 * - a reader whose unsent data is past a bound (Moth: its kernel socket buffers are full) loses the
 *   frames meant for it and stays joined: a slow reader, or one sent a huge frame, is never dropped;
 * - every refusal and error is a dropped TCP connection (the client sees 1006).
 *
 * Its own protections, where Moth Lite's were not measured (`limits`): sessions per address, and the
 * bytes of unfinished frames per address and in all (see HubBudget).
 */
export interface HubOptions {
  readonly port?: number;
  readonly host?: string;
  /** When set, every channel is registered with this key: every connection must carry `key=<this>`. */
  readonly key?: string;
  /**
   * Registered channels, id (a 20-character xid) to key (undefined: open), as Moth's management API
   * creates them: they outlive their members and a hub restart, and no joiner sets or changes the key.
   */
  readonly channels?: Readonly<Record<string, string | undefined>>;
  /** Slots of a track's ring (Moth Lite: 20). */
  readonly ringSlots?: number;
  /** A reader more than this many slots behind jumps to the newest (Moth Lite: 2). */
  readonly maxBehind?: number;
  /** Poll period of every reader, ms (Moth Lite: 1). */
  readonly pollMs?: number;
  /** Unsent bytes past which a reader loses its frames (Moth Lite: what kernel buffers take). */
  readonly maxUnsentBytes?: number;
  /** Sessions per address and bytes of unfinished frames (defaults: DEFAULT_HUB_LIMITS). */
  readonly limits?: Partial<HubLimits>;
}

/** Which Moth endpoint a member joined by: publisher, subscriber, or both (meb). */
type Endpoint = 'pub' | 'sub' | 'meb';

interface Member {
  readonly ws: WebSocket;
  readonly role: Endpoint;
  readonly bundle: boolean;
  readonly track: TrackState;
  /** Sequence number of the last slot this reader looked at. */
  cursor: number;
  /** This reader's poll phase within `pollMs` (readers poll independently). */
  readonly phase: number;
  /** Restarts the idle timeout. */
  readonly keepAlive: () => void;
}

interface Frame {
  readonly data: Buffer;
  readonly binary: boolean;
}

interface Slot {
  readonly seq: number;
  /** When the hub took the frame (performance.now()). */
  readonly at: number;
  readonly frame: Frame;
  readonly sender: Member;
}

interface ChannelState {
  readonly id: string;
  /** Set by whoever created the channel; undefined leaves it open to all. */
  readonly key: string | undefined;
  members: number;
}

interface TrackState {
  readonly id: string;
  readonly channel: ChannelState;
  readonly members: Set<Member>;
  readonly ring: Slot[];
  seq: number;
  mime?: Frame;
}

const EXTENDED_COMMAND = Buffer.from('REXT');

export interface HubStats extends BudgetStats {
  /** Frames handed to a member's socket. */
  relayed: number;
  /** Frames a reader skipped because it was too far behind (lost as on Moth Lite). */
  lostBehind: number;
  rejected: number;
  /** `REXT` text frames dropped. */
  extendedDropped: number;
  /** Frames lost to a reader whose unsent data was past the bound. */
  lostUnsent: number;
  /** Members dropped at their idle timeout. */
  idleDropped: number;
}

interface Accepted {
  readonly role: Endpoint;
  readonly channelId: string;
  readonly key: string | undefined;
  readonly trackId: string;
  readonly bundle: boolean;
  readonly timeoutMs: number;
}

export class MothHub {
  private readonly channels = new Map<string, ChannelState>();
  private readonly registered = new Map<string, ChannelState>();
  private readonly tracks = new Map<string, TrackState>();
  /** Tracks with slots some reader has not looked at yet. */
  private readonly pending = new Set<TrackState>();
  private readonly wss = new WebSocketServer({
    noServer: true,
    autoPong: false,
    maxPayload: 16 * 1024 * 1024,
  });
  private server?: Server;
  private ticker?: NodeJS.Timeout;
  private readonly ringSlots: number;
  private readonly maxBehind: number;
  private readonly pollMs: number;
  private readonly maxUnsentBytes: number;
  private readonly budget: HubBudget;
  private readonly counts = {
    relayed: 0,
    lostBehind: 0,
    rejected: 0,
    extendedDropped: 0,
    lostUnsent: 0,
    idleDropped: 0,
  };

  get stats(): Readonly<HubStats> {
    return { ...this.counts, ...this.budget.stats };
  }

  /** Bytes of unfinished frames the hub holds right now. */
  get partialBytes(): number {
    return this.budget.partialBytes;
  }

  constructor(private readonly options: HubOptions = {}) {
    this.ringSlots = options.ringSlots ?? 20;
    this.maxBehind = options.maxBehind ?? 2;
    this.pollMs = options.pollMs ?? 1;
    this.maxUnsentBytes = options.maxUnsentBytes ?? 4 * 1024 * 1024;
    this.budget = new HubBudget({ ...DEFAULT_HUB_LIMITS, ...options.limits });
    if (this.ringSlots < 1 || this.maxBehind < 1 || this.pollMs <= 0)
      throw new Error('ringSlots, maxBehind and pollMs must be positive');
    for (const [id, key] of Object.entries(options.channels ?? {})) {
      if (!isRegisteredChannelId(id))
        throw new Error(`a registered channel's id is a 20-character xid: ${id}`);
      this.registered.set(`xid:${id}`, { id: `xid:${id}`, key, members: 0 });
    }
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
        const budget = this.budget.admit(socket as Socket);
        if (budget && accepted && this.admit(accepted)) {
          for (const frame of ['message', 'ping', 'pong'] as const) ws.on(frame, budget.frameDone);
          return this.join(ws, accepted);
        }
        // Moth says nothing: it drops the TCP connection (the client sees 1006).
        this.counts.rejected++;
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
    clearInterval(this.ticker);
    this.ticker = undefined;
    this.tracks.clear();
    this.channels.clear();
    this.pending.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Number of members on a channel's track (for tests). */
  members(channelName: string, source = 'base', track = 'base'): number {
    const channel = isRegisteredChannelId(channelName) ? `xid:${channelName}` : `instant:${channelName}`;
    return this.tracks.get(`${channel}/${source}/${track}`)?.members.size ?? 0;
  }

  /** Number of open sessions, all channels together. */
  get sessions(): number {
    return this.wss.clients.size;
  }

  private accept(req: IncomingMessage): Accepted | null {
    const url = new URL(req.url ?? '/', 'http://hub');
    const role = /^\/pang\/ws\/(pub|sub|meb)$/.exec(url.pathname)?.[1] as Endpoint | undefined;
    if (!role) return null;
    const q = url.searchParams;
    const channel = q.get('channel');
    let channelId: string;
    if (channel === 'instant') {
      const name = q.get('name');
      // A meb without a name is accepted (measured); pub and sub need one.
      if (!name && role !== 'meb') return null;
      channelId = `instant:${name ?? ''}`;
    } else if (channel && this.registered.has(`xid:${channel}`)) {
      channelId = `xid:${channel}`;
    } else return null;
    const key = q.get('key') ?? undefined;
    if (this.options.key !== undefined && key !== this.options.key) return null;
    const timeout = Number(q.get('timeout') ?? 30);
    if (!Number.isFinite(timeout) || timeout <= 0) return null;
    const source = q.get('source') ?? 'base';
    const track = q.get('track') ?? 'video';
    const trackId = `${channelId}/${source}/${track}`;
    if (role === 'pub' && q.get('style') !== 'multi') {
      const existing = this.tracks.get(trackId);
      if (existing && [...existing.members].some((m) => m.role === 'pub')) return null;
    }
    return { role, channelId, key, trackId, bundle: q.get('mode') === 'bundle', timeoutMs: timeout * 1000 };
  }

  /** The channel's key check: its registration or its creator set the key; keyless leaves it open. */
  private admit(a: Accepted): boolean {
    const channel = this.registered.get(a.channelId) ?? this.channels.get(a.channelId);
    return !channel || channel.key === undefined || channel.key === a.key;
  }

  private join(ws: WebSocket, a: Accepted) {
    let channel = this.channels.get(a.channelId);
    if (!channel) {
      channel = this.registered.get(a.channelId) ?? { id: a.channelId, key: a.key, members: 0 };
      this.channels.set(a.channelId, channel);
    }
    channel.members++;
    let track = this.tracks.get(a.trackId);
    if (!track) {
      track = { id: a.trackId, channel, members: new Set(), ring: [], seq: 0 };
      this.tracks.set(a.trackId, track);
    }

    let idle: NodeJS.Timeout | undefined;
    const keepAlive = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        this.counts.idleDropped++;
        ws.terminate();
      }, a.timeoutMs);
    };
    const member: Member = {
      ws,
      role: a.role,
      bundle: a.bundle,
      track,
      cursor: track.seq,
      phase: Math.random() * this.pollMs,
      keepAlive,
    };
    track.members.add(member);
    keepAlive();
    if (track.mime) this.send(member, track.mime);

    // Pings keep a meb session alive, nothing else: a pub must send, a sub must receive.
    if (a.role === 'meb') ws.on('ping', keepAlive);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (member.role !== 'sub') keepAlive();
      if (member.role === 'sub' && !member.bundle) return;
      const frame = { data: toBuffer(data), binary: isBinary };
      if (!isBinary) {
        if (frame.data.subarray(0, EXTENDED_COMMAND.length).equals(EXTENDED_COMMAND)) {
          this.counts.extendedDropped++;
          return;
        }
        if (member.role !== 'sub') track.mime = frame;
      }
      this.enqueue(track, member, frame);
    });
    ws.on('close', () => {
      clearTimeout(idle);
      track.members.delete(member);
      if (track.members.size === 0) {
        this.tracks.delete(track.id);
        this.pending.delete(track);
      }
      if (--channel.members === 0) this.channels.delete(channel.id);
    });
    ws.on('error', () => ws.terminate());
  }

  private enqueue(track: TrackState, sender: Member, frame: Frame) {
    track.ring.push({ seq: ++track.seq, at: performance.now(), frame, sender });
    if (track.ring.length > this.ringSlots) track.ring.shift();
    this.pending.add(track);
    this.ticker ??= setInterval(() => this.tick(), this.pollMs);
  }

  /**
   * Plays every reader's polls up to now. A frame is seen by the reader's first poll at or after its
   * arrival (by arrival time, so a late timer here loses no more than Moth would); a poll that finds
   * more than `maxBehind` new slots reads only the newest.
   */
  private tick() {
    if (this.pending.size === 0) {
      clearInterval(this.ticker);
      this.ticker = undefined;
      return;
    }
    const now = performance.now();
    for (const track of this.pending) {
      let caughtUp = true;
      for (const m of track.members) if (!this.poll(track, m, now)) caughtUp = false;
      const oldest = Math.min(...[...track.members].map((m) => m.cursor));
      while (track.ring.length > 0 && track.ring[0]!.seq <= oldest) track.ring.shift();
      if (caughtUp) this.pending.delete(track);
    }
  }

  /** One reader's polls up to `now`; true when it has looked at every slot. */
  private poll(track: TrackState, m: Member, now: number): boolean {
    const ring = track.ring;
    let i = ring.findIndex((s) => s.seq > m.cursor);
    if (i < 0) return true;
    // Slots overwritten before this reader looked at them count as behind.
    let overwritten = ring[i]!.seq - m.cursor - 1;
    while (i < ring.length) {
      const pollAt = this.pollAfter(ring[i]!.at, m.phase);
      if (pollAt > now) return false;
      let j = i;
      while (j + 1 < ring.length && this.pollAfter(ring[j + 1]!.at, m.phase) === pollAt) j++;
      const found = j - i + 1 + overwritten;
      if (found > this.maxBehind) {
        this.counts.lostBehind += found - 1;
        this.relay(m, ring[j]!);
      } else for (let k = i; k <= j; k++) this.relay(m, ring[k]!);
      overwritten = 0;
      m.cursor = ring[j]!.seq;
      i = j + 1;
    }
    return true;
  }

  private pollAfter(at: number, phase: number): number {
    return Math.ceil((at - phase) / this.pollMs) * this.pollMs + phase;
  }

  /** Who hears whom: meb to meb, pub to sub and meb, sub to pub when both are bundles. */
  private relay(to: Member, slot: Slot) {
    const from = slot.sender;
    if (to === from) return;
    const hears =
      from.role === 'meb'
        ? to.role === 'meb'
        : from.role === 'pub'
          ? to.role !== 'pub'
          : to.role === 'pub' && to.bundle;
    if (hears) this.send(to, slot.frame);
  }

  private send(to: Member, frame: Frame) {
    const ws = to.ws;
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > this.maxUnsentBytes) {
      this.counts.lostUnsent++;
      return;
    }
    ws.send(frame.data, { binary: frame.binary });
    this.counts.relayed++;
    if (to.role === 'sub') to.keepAlive();
  }
}
