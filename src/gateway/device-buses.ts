import { WebSocket } from 'ws';
import { SHARED_BUS, shardOf } from '../domain/shards';
import { MothClient, type MothClientOptions } from '../moth/client';
import { sendSpread, type SpreadTarget } from './spread';

/** A device's bus as the directory knows it. */
export interface BusEntry {
  readonly deviceId: string;
  readonly busId: string;
  heardOnBus: 'own' | 'shared' | null;
}

export interface DeviceBusesDeps {
  readonly shards: number;
  /** The path of a device's own bus. */
  readonly busPath: (busId: string) => string;
  /** The shared bus of earlier versions, when it is still in use. */
  readonly sharedBusPath: string | undefined;
  readonly moth: Omit<MothClientOptions, 'path'>;
  /**
   * A frame heard on a device's own bus (`deviceId`) or on the shared bus (undefined); `text` when it
   * came as a text frame. False: this turn of the event loop has taken its share, every session reads
   * again on the next one.
   */
  readonly onFrame: (data: Buffer, deviceId: string | undefined, text: boolean) => boolean | void;
  /**
   * A bus session changed: `lost` (it dropped, or did not open within its grace: the devices it carries
   * could not be heard), `restored` (open again after a loss), `opened` (this gateway's first open of a
   * device's bus), `closed` (this gateway let it go: shard handed over, device gone).
   */
  readonly onBus: (change: BusChange, deviceIds: readonly string[]) => void;
  /** Sessions opened at once when a shard is taken (the rest wait their turn). */
  readonly openConcurrency?: number;
}

export type BusChange = 'lost' | 'restored' | 'opened' | 'closed';

interface Session {
  readonly client: MothClient;
  readonly shard: number;
  readonly createdAt: number;
  /**
   * A device new to a shard already held: it was connected nowhere before, so its first open never
   * holds the shard's rounds.
   */
  readonly fresh: boolean;
  /** When it first opened (null: not yet). */
  firstOpenAt: number | null;
  /** While lost: the devices it was lost for (its own, or those heard on the shared bus then). */
  lostFor: string[] | null;
  /** Stopped: if still waiting its turn to open, it never will. */
  closed: boolean;
  readonly start: () => void;
}

/** A text frame this soon after a session opened is Moth's replay of the track's MIME, not news. */
const REPLAY_WINDOW_MS = 250;

/**
 * A shard taken over counts as held once all its sessions opened, or this long after they were
 * created: one that has not opened by then is lost for its device alone (a bus a squatter holds, a
 * robot's track Moth refuses) and no longer holds the whole shard's rounds void.
 */
const OPEN_GRACE_MS = 5000;

/** A directory entry, with the shard its device falls in (hashed once, when it is added). */
type Known = BusEntry & { readonly shard: number };

/**
 * How the buses read. Two flags, each with its own reason: `paused` while Redis is behind (frames
 * wait in the sockets, then in Moth, which loses them rather than this process growing without
 * bound), `yielding` for the rest of a turn of the event loop once the turn's share of frames is
 * spent. Yielding stops every session, not only the one that spent the share, since each socket
 * still to be read would bring a whole read of frames (thousands of flooding sessions would hold the
 * loop for seconds); they read again on the next turn, from the one after the last, so the same few
 * sessions do not take every turn's share.
 */
function createReading(clients: () => MothClient[]) {
  let paused = false;
  let yielding = false;
  const pauseAll = () => clients().forEach((c) => c.pause());
  return {
    paused: () => paused,
    pause(): void {
      paused = true;
      pauseAll();
    },
    resume(): void {
      paused = false;
      clients().forEach((c) => c.resume());
    },
    /** The turn's share is spent, the last frame read from `last`. */
    yieldTurn(last: MothClient): void {
      if (yielding) return;
      yielding = true;
      pauseAll();
      setImmediate(() => {
        yielding = false;
        if (paused) return;
        const order = clients();
        const from = order.indexOf(last) + 1;
        for (let k = 0; k < order.length; k++) order[(from + k) % order.length]!.resume();
      });
    },
  };
}
type Reading = ReturnType<typeof createReading>;

/** Sessions opening, at most `concurrency` at once; the rest wait their turn. */
function createOpenings(concurrency: number) {
  const queue: Session[] = [];
  let opening = 0;
  const pump = () => {
    while (opening < concurrency && queue.length > 0) {
      const next = queue.shift()!;
      if (!next.closed) next.start();
    }
  };
  return {
    add(session: Session): void {
      queue.push(session);
      pump();
    },
    started: () => void opening++,
    /** One that started opened, failed, or had its time: its slot goes to the next. */
    settled(): void {
      opening--;
      pump();
    },
    stop(): void {
      for (const s of queue) s.closed = true;
      queue.length = 0;
    },
  };
}

/** What a session needs of the buses that hold it. */
interface SessionContext {
  readonly deps: DeviceBusesDeps;
  readonly openings: ReturnType<typeof createOpenings>;
  readonly reading: Reading;
  /** The devices heard on the shared bus now (what its loss is a loss for). */
  readonly sharedUserIds: () => string[];
}

/**
 * One bus session, queued to open. Lost when it drops, or (unless `fresh`) when it has not opened
 * within its grace: `onBus` is told, and again when it is restored.
 */
function openSession(
  ctx: SessionContext,
  path: string,
  shard: number,
  deviceId: string | undefined,
  fresh: boolean,
): Session {
  const { deps } = ctx;
  const label = deviceId === undefined ? 'shared device bus' : `bus of device ${deviceId}`;
  const client = new MothClient({ ...deps.moth, path, label, quiet: deviceId !== undefined });
  let openedAt = 0;
  let starting = false;
  const settle = () => {
    if (!starting) return;
    starting = false;
    ctx.openings.settled();
  };
  const session: Session = {
    client,
    shard,
    createdAt: Date.now(),
    fresh,
    firstOpenAt: null,
    lostFor: null,
    closed: false,
    start: () => {
      starting = true;
      ctx.openings.started();
      client.start();
      // A session that cannot open soon gives its slot to the next (it keeps retrying on its own).
      setTimeout(settle, 5000).unref();
    },
  };
  const lose = () => {
    if (session.closed || session.lostFor) return;
    session.lostFor = deviceId === undefined ? ctx.sharedUserIds() : [deviceId];
    deps.onBus('lost', session.lostFor);
  };
  if (!fresh) setTimeout(() => session.firstOpenAt === null && lose(), OPEN_GRACE_MS).unref();
  client.on('open', () => {
    openedAt = Date.now();
    if (ctx.reading.paused()) client.pause();
    if (session.firstOpenAt === null) {
      session.firstOpenAt = openedAt;
      if (deviceId !== undefined) deps.onBus('opened', [deviceId]);
    }
    if (session.lostFor) deps.onBus('restored', session.lostFor);
    session.lostFor = null;
    settle();
  });
  client.on('close', lose);
  client.on('message', (data, isBinary) => {
    if (!isBinary && Date.now() - openedAt < REPLAY_WINDOW_MS) return;
    if (deps.onFrame(data, deviceId, !isBinary) === false) ctx.reading.yieldTurn(client);
  });
  client.on('close', settle);
  ctx.openings.add(session);
  return session;
}

/**
 * Per held shard (and the shared bus), since when it counts as held: from when it was taken and
 * every session taken with it had opened (or had its grace), null until then. A session lost later
 * voids rounds for its own devices only (`onBus`), a bounded few, never for the shard; but while more
 * than half of them are down the fault is ours or Moth's (a Moth restart, this gateway's network),
 * not the robots': no shard counts as held until that ends (`sight` remembers when), however long.
 */
function heldSinceOf(
  all: readonly Session[],
  held: ReadonlyMap<number, number>,
  sight: { blind: boolean; at: number },
  now: number,
): Map<number, number | null> {
  if (all.filter((s) => s.lostFor).length * 2 > all.length) {
    sight.blind = true;
    return new Map([...held.keys()].map((shard) => [shard, null]));
  }
  if (sight.blind) sight.at = now;
  sight.blind = false;
  const out = new Map<number, number | null>([...held].map(([shard, t]) => [shard, Math.max(t, sight.at)]));
  for (const s of all) {
    const since = out.get(s.shard);
    if (since === undefined || since === null || s.fresh) continue;
    if (s.firstOpenAt === null && now - s.createdAt < OPEN_GRACE_MS) {
      out.set(s.shard, null);
      continue;
    }
    // From its first open, or from the end of its grace when it had not opened by then.
    out.set(s.shard, Math.max(since, Math.min(s.firstOpenAt ?? Infinity, s.createdAt + OPEN_GRACE_MS)));
  }
  return out;
}

/** Every live device's bus, as last read (`replace`) or added since, each with its shard. */
function createBusDirectory(shards: number) {
  const entries = new Map<string, Known>();
  const know = (e: BusEntry): Known => {
    const known = { ...e, shard: shardOf(e.deviceId, shards) };
    entries.set(e.deviceId, known);
    return known;
  };
  return {
    entries,
    /** The entries are these now; answers the devices gone. */
    replace(list: readonly BusEntry[]): string[] {
      const seen = new Set<string>();
      for (const e of list) {
        seen.add(e.deviceId);
        const known = entries.get(e.deviceId);
        if (known) known.heardOnBus = e.heardOnBus;
        else know(e);
      }
      const gone = [...entries.keys()].filter((id) => !seen.has(id));
      for (const id of gone) entries.delete(id);
      return gone;
    },
    /** Adds those not known yet; answers them. */
    add(list: readonly BusEntry[]): Known[] {
      const added: Known[] = [];
      for (const e of list) if (!entries.has(e.deviceId)) added.push(know(e));
      return added;
    },
    /** The devices last heard on the shared bus. */
    sharedUserIds: () =>
      [...entries.values()].filter((e) => e.heardOnBus === 'shared').map((e) => e.deviceId),
  };
}

function closeBus(deps: DeviceBusesDeps, session: Session, deviceId?: string): void {
  session.closed = true;
  void session.client.stop();
  if (deviceId !== undefined) deps.onBus('closed', [deviceId]);
}

/** Sending on the buses held (to all of them, each round) and to one device's (its commands). */
function createSending(
  deps: DeviceBusesDeps,
  directory: ReadonlyMap<string, Known>,
  sessions: ReadonlyMap<string, Session>,
  sharedSession: () => Session | undefined,
) {
  return {
    /**
     * Sends one message on every held bus, spread over `spreadMs` (`sendSpread`). Resolves when the
     * last has been handed to its session. Devices in `skipping` are left out (the shared bus never
     * is: it carries many devices); the buses of devices `first` names go before the others.
     */
    async sendToAll(
      message: unknown,
      spreadMs: number,
      options: {
        readonly skipping?: ReadonlySet<string>;
        readonly first?: (deviceId: string) => boolean;
        readonly handed?: (deviceId: string, at: number) => void;
      } = {},
    ): Promise<{ sent: number; failed: number }> {
      const { skipping, first = () => false, handed = () => {} } = options;
      const target = (deviceId: string | undefined, s: Session): SpreadTarget => [
        deviceId,
        (payload) => s.client.sendEncoded(payload),
      ];
      const shared = sharedSession();
      const before: SpreadTarget[] = shared?.client.isOpen ? [target(undefined, shared)] : [];
      const after: SpreadTarget[] = [];
      for (const [deviceId, s] of sessions)
        if (!skipping?.has(deviceId) && s.client.isOpen)
          (first(deviceId) ? before : after).push(target(deviceId, s));
      return sendSpread(
        [...before, ...after],
        Buffer.from(JSON.stringify(message), 'utf8'),
        spreadMs,
        handed,
      );
    },

    /**
     * Sends one message to one device: on its session when this gateway holds it, else through a
     * short session of its own; also on the shared bus while the device is still heard there.
     */
    async sendToDevice(deviceId: string, message: unknown): Promise<void> {
      const entry = directory.get(deviceId);
      if (!entry) throw new Error(`no bus known for device ${deviceId}`);
      const session = sessions.get(deviceId);
      if (session?.client.isOpen) await session.client.send(message);
      else await sendOnce(deps.moth, deps.busPath(entry.busId), message);
      if (entry.heardOnBus === 'shared' && deps.sharedBusPath) {
        const shared = sharedSession();
        if (shared?.client.isOpen) await shared.client.send(message);
        else await sendOnce(deps.moth, deps.sharedBusPath, message);
      }
    },
  };
}

/**
 * The device buses a gateway holds: one Moth session per device of the shards it owns (plus the shared
 * bus of earlier versions when it holds that), HEALTHCHECK on each across a spread, and frames to one
 * device's bus. Knows every live device's bus (the directory), so it can reach any device.
 */
export function createDeviceBuses(deps: DeviceBusesDeps) {
  const busDirectory = createBusDirectory(deps.shards);
  const directory = busDirectory.entries;
  /** Shard -> when this gateway took it. */
  const held = new Map<number, number>();
  const sight = { blind: false, at: 0 };
  const ctx: SessionContext = {
    deps,
    openings: createOpenings(deps.openConcurrency ?? 200),
    reading: createReading(() => open.all().map((s) => s.client)),
    sharedUserIds: busDirectory.sharedUserIds,
  };
  const open = createHeldSessions(ctx);

  return {
    directory,

    /** Replaces the directory with every live device's bus; opens and closes sessions to match. */
    sync(entries: readonly BusEntry[]): void {
      for (const id of busDirectory.replace(entries)) open.closeDevice(id);
      for (const e of directory.values())
        if (!open.sessions.has(e.deviceId) && held.has(e.shard)) open.openDevice(e, true);
    },

    /** Adds devices registered since the last sync. */
    add(entries: readonly BusEntry[]): void {
      for (const e of busDirectory.add(entries)) if (held.has(e.shard)) open.openDevice(e, true);
    },

    /** The shards (and the shared bus) this gateway holds now; opens and closes sessions to match. */
    hold(shards: ReadonlySet<number>): void {
      for (const s of [...held.keys()]) {
        if (shards.has(s)) continue;
        held.delete(s);
        open.closeShard(s);
      }
      const taken = new Set([...shards].filter((s) => !held.has(s)));
      for (const s of taken) held.set(s, Date.now());
      if (taken.has(SHARED_BUS) && deps.sharedBusPath) open.openShared(deps.sharedBusPath);
      for (const e of directory.values())
        if (taken.has(e.shard) && !open.sessions.has(e.deviceId)) open.openDevice(e, false);
    },

    /** The shards held now. */
    held: () => [...held.keys()],
    /** Per held shard, since when it counts as held (`heldSinceOf`). */
    heldSince: () => heldSinceOf(open.all(), held, sight, Date.now()),
    /** How many devices of the directory were last heard on the shared bus. */
    sharedUsers: () => busDirectory.sharedUserIds().length,
    /** Stops reading every bus (Redis is behind); `resume` reads again. */
    pause: () => ctx.reading.pause(),
    resume: () => ctx.reading.resume(),
    sessionCount: () => open.all().length,
    openSessionCount: () => open.all().filter((s) => s.client.isOpen).length,

    ...createSending(deps, directory, open.sessions, open.shared),

    async stop(): Promise<void> {
      ctx.openings.stop();
      held.clear();
      await Promise.all(open.takeAll().map((s) => s.client.stop()));
    },
  };
}

/** The sessions a gateway holds: one per device of its shards, and the shared bus's when it holds that. */
function createHeldSessions(ctx: SessionContext) {
  const { deps } = ctx;
  const sessions = new Map<string, Session>();
  let shared: Session | undefined;
  const closeDevice = (deviceId: string) => {
    const s = sessions.get(deviceId);
    if (s) closeBus(deps, s, deviceId);
    sessions.delete(deviceId);
  };
  const all = (): Session[] => [...(shared ? [shared] : []), ...sessions.values()];
  return {
    sessions,
    shared: () => shared,
    all,
    openDevice(entry: Known, fresh: boolean): void {
      const path = deps.busPath(entry.busId);
      sessions.set(entry.deviceId, openSession(ctx, path, entry.shard, entry.deviceId, fresh));
    },
    closeDevice,
    openShared(path: string): void {
      shared = openSession(ctx, path, SHARED_BUS, undefined, false);
    },
    /** Lets a shard's sessions go (the shared bus's, for SHARED_BUS). */
    closeShard(shard: number): void {
      if (shard === SHARED_BUS) {
        if (shared) closeBus(deps, shared);
        shared = undefined;
      } else for (const [id, session] of sessions) if (session.shard === shard) closeDevice(id);
    },
    /** Every session, let go of (for the caller to stop). */
    takeAll(): Session[] {
      const taken = all();
      sessions.clear();
      shared = undefined;
      return taken;
    },
  };
}

/** Joins a bus, sends one binary JSON frame, leaves. */
async function sendOnce(
  moth: Omit<MothClientOptions, 'path'>,
  path: string,
  message: unknown,
): Promise<void> {
  const url = new URL(path, moth.url);
  if (moth.key !== undefined) url.searchParams.set('key', moth.key);
  const ws = new WebSocket(url, { handshakeTimeout: 5000, perMessageDeflate: false });
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('close', () => reject(new Error('Moth dropped the session')));
    });
    await new Promise<void>((resolve, reject) =>
      ws.send(Buffer.from(JSON.stringify(message)), { binary: true }, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    // Moth relays on its next poll: leave only after it has had time to.
    await new Promise((r) => setTimeout(r, 20));
  } finally {
    ws.close();
  }
}

export type DeviceBuses = ReturnType<typeof createDeviceBuses>;
