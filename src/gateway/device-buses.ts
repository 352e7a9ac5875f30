import { WebSocket } from 'ws';
import { shardOf } from '../domain/shards';
import { MothClient, type MothClientOptions } from '../moth/client';
import { SHARED_BUS } from '../redis/shard-leases';

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
   * A frame heard on a device's own bus (`deviceId`) or on the shared bus (undefined). False: this
   * turn of the event loop has taken its share, every session reads again on the next one.
   */
  /** A frame heard on a device's bus (undefined: the shared one); `text` when it came as a text frame. */
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

/**
 * The device buses a gateway holds: one Moth session per device of the shards it owns (plus the shared
 * bus of earlier versions when it holds that), HEALTHCHECK on each across a spread, and frames to one
 * device's bus. Knows every live device's bus (the directory), so it can reach any device.
 */
/** A directory entry, with the shard its device falls in (hashed once, when it is added). */
type Known = BusEntry & { readonly shard: number };

export function createDeviceBuses(deps: DeviceBusesDeps) {
  const directory = new Map<string, Known>();
  const know = (e: BusEntry): Known => {
    const known = { ...e, shard: shardOf(e.deviceId, deps.shards) };
    directory.set(e.deviceId, known);
    return known;
  };
  const sessions = new Map<string, Session>();
  /** Shard -> when this gateway took it. */
  const held = new Map<number, number>();
  let shared: Session | undefined;
  const openQueue: Session[] = [];
  let opening = 0;
  let paused = false;
  /** More than half of the buses were down at the last look; when that last ended. */
  let blind = false;
  let sightAt = 0;
  const openConcurrency = deps.openConcurrency ?? 200;
  /**
   * The turn's share of frames is spent: every session stops reading for the rest of this turn of the
   * event loop, not only the one that spent it, since each socket still to be read would bring a whole
   * read of frames (thousands of flooding sessions would hold the loop for seconds). They read again on
   * the next turn, from the one after `last`, so the same few sessions do not take every turn's share.
   */
  let yielding = false;
  function yieldTurn(last: MothClient) {
    if (yielding) return;
    yielding = true;
    shared?.client.pause();
    for (const s of sessions.values()) s.client.pause();
    setImmediate(() => {
      yielding = false;
      if (paused) return;
      shared?.client.resume();
      const order = [...sessions.values()];
      const from = order.findIndex((s) => s.client === last) + 1;
      for (let k = 0; k < order.length; k++) order[(from + k) % order.length]!.client.resume();
    });
  }

  function openSession(path: string, shard: number, deviceId: string | undefined, fresh: boolean) {
    const label = deviceId === undefined ? 'shared device bus' : `bus of device ${deviceId}`;
    const client = new MothClient({ ...deps.moth, path, label, quiet: deviceId !== undefined });
    let openedAt = 0;
    let starting = false;
    const settle = () => {
      if (!starting) return;
      starting = false;
      opening--;
      pump();
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
        opening++;
        client.start();
        // A session that cannot open soon gives its slot to the next (it keeps retrying on its own).
        setTimeout(settle, 5000).unref();
      },
    };
    const carried = () => (deviceId === undefined ? sharedUserIds() : [deviceId]);
    const lose = () => {
      if (session.closed || session.lostFor) return;
      session.lostFor = carried();
      deps.onBus('lost', session.lostFor);
    };
    if (!fresh)
      setTimeout(() => {
        if (session.firstOpenAt === null) lose();
      }, OPEN_GRACE_MS).unref();
    client.on('open', () => {
      openedAt = Date.now();
      if (paused) client.pause();
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
      if (deps.onFrame(data, deviceId, !isBinary) === false) yieldTurn(client);
    });
    client.on('close', settle);
    openQueue.push(session);
    pump();
    return session;
  }

  function sharedUserIds(): string[] {
    const out: string[] = [];
    for (const e of directory.values()) if (e.heardOnBus === 'shared') out.push(e.deviceId);
    return out;
  }

  function pump() {
    while (opening < openConcurrency && openQueue.length > 0) {
      const next = openQueue.shift()!;
      if (!next.closed) next.start();
    }
  }

  function closeSession(session: Session, deviceId?: string) {
    session.closed = true;
    void session.client.stop();
    if (deviceId !== undefined) deps.onBus('closed', [deviceId]);
  }

  function openDevice(entry: Known, fresh: boolean) {
    sessions.set(entry.deviceId, openSession(deps.busPath(entry.busId), entry.shard, entry.deviceId, fresh));
  }

  return {
    directory,

    /** Replaces the directory with every live device's bus; opens and closes sessions to match. */
    sync(entries: readonly BusEntry[]): void {
      const seen = new Set<string>();
      for (const e of entries) {
        seen.add(e.deviceId);
        let known = directory.get(e.deviceId);
        if (known) known.heardOnBus = e.heardOnBus;
        else known = know(e);
        if (!sessions.has(e.deviceId) && held.has(known.shard)) openDevice(known, true);
      }
      for (const id of directory.keys()) {
        if (seen.has(id)) continue;
        directory.delete(id);
        const s = sessions.get(id);
        if (s) closeSession(s, id);
        sessions.delete(id);
      }
    },

    /** Adds devices registered since the last sync. */
    add(entries: readonly BusEntry[]): void {
      for (const e of entries) {
        if (directory.has(e.deviceId)) continue;
        const known = know(e);
        if (held.has(known.shard)) openDevice(known, true);
      }
    },

    /** The shards (and the shared bus) this gateway holds now; opens and closes sessions to match. */
    hold(shards: ReadonlySet<number>): void {
      const now = Date.now();
      for (const s of [...held.keys()]) {
        if (shards.has(s)) continue;
        held.delete(s);
        if (s === SHARED_BUS) {
          if (shared) closeSession(shared);
          shared = undefined;
          continue;
        }
        for (const [id, session] of sessions) {
          if (session.shard !== s) continue;
          closeSession(session, id);
          sessions.delete(id);
        }
      }
      const taken = [...shards].filter((s) => !held.has(s));
      for (const s of taken) held.set(s, now);
      if (taken.includes(SHARED_BUS) && deps.sharedBusPath) {
        shared = openSession(deps.sharedBusPath, SHARED_BUS, undefined, false);
      }
      const takenSet = new Set(taken);
      for (const e of directory.values())
        if (takenSet.has(e.shard) && !sessions.has(e.deviceId)) openDevice(e, false);
    },

    /** The shards held now. */
    held(): number[] {
      return [...held.keys()];
    },

    /**
     * Per held shard (and the shared bus), since when it counts as held: from when it was taken and
     * every session taken with it had opened (or had its grace), null until then. A session lost later
     * voids rounds for its own devices only (`onBus`), a bounded few, never for the shard; but while more
     * than half of them are down the fault is ours or Moth's (a Moth restart, this gateway's network),
     * not the robots': no shard counts as held until that ends, however long it lasts.
     */
    heldSince(): Map<number, number | null> {
      const now = Date.now();
      const all = [...sessions.values(), ...(shared ? [shared] : [])];
      if (all.filter((s) => s.lostFor).length * 2 > all.length) {
        blind = true;
        return new Map([...held.keys()].map((shard) => [shard, null]));
      }
      if (blind) sightAt = now;
      blind = false;
      const out = new Map<number, number | null>(
        [...held].map(([shard, t]) => [shard, Math.max(t, sightAt)]),
      );
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
    },

    /** How many devices of the directory were last heard on the shared bus. */
    sharedUsers(): number {
      return sharedUserIds().length;
    },

    /**
     * Stops reading every bus (Redis is behind): frames wait in the sockets, then in Moth, which loses
     * them rather than this process growing without bound. `resume` reads again.
     */
    pause(): void {
      paused = true;
      shared?.client.pause();
      for (const s of sessions.values()) s.client.pause();
    },

    resume(): void {
      paused = false;
      shared?.client.resume();
      for (const s of sessions.values()) s.client.resume();
    },

    sessionCount(): number {
      return sessions.size + (shared ? 1 : 0);
    },

    openSessionCount(): number {
      let n = shared?.client.isOpen ? 1 : 0;
      for (const s of sessions.values()) if (s.client.isOpen) n++;
      return n;
    },

    /**
     * Sends one message on every held bus, spread evenly over `spreadMs` so no burst leaves at once.
     * Resolves when the last has been handed to its session. Devices in `skipping` are left out (the
     * shared bus never is: it carries many devices); `handed` is told each device's own bus as its
     * message is handed to its session (`at`: `performance.now()` of that step).
     */
    async sendToAll(
      message: unknown,
      spreadMs: number,
      skipping: ReadonlySet<string> = new Set(),
      handed: (deviceId: string, at: number) => void = () => {},
    ): Promise<{ sent: number; failed: number }> {
      const own = [...sessions].filter(([deviceId]) => !skipping.has(deviceId));
      const all: [string | undefined, Session][] = shared ? [[undefined, shared], ...own] : own;
      const targets = all.filter(([, s]) => s.client.isOpen);
      let sent = 0;
      let failed = 0;
      const payload = Buffer.from(JSON.stringify(message), 'utf8');
      const send = ([deviceId, s]: [string | undefined, Session], at: number) => {
        if (deviceId !== undefined) handed(deviceId, at);
        return s.client.sendEncoded(payload).then(
          () => void sent++,
          () => void failed++,
        );
      };
      const pending: Promise<void>[] = [];
      const stepMs = 5;
      const steps = Math.max(1, Math.ceil(spreadMs / stepMs));
      const perStep = Math.ceil(targets.length / steps);
      for (let i = 0; i < targets.length; i += perStep) {
        if (i > 0) await new Promise((r) => setTimeout(r, stepMs));
        const at = performance.now();
        for (const s of targets.slice(i, i + perStep)) pending.push(send(s, at));
      }
      await Promise.all(pending);
      return { sent, failed };
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
        if (shared?.client.isOpen) await shared.client.send(message);
        else await sendOnce(deps.moth, deps.sharedBusPath, message);
      }
    },

    async stop(): Promise<void> {
      for (const s of openQueue) s.closed = true;
      openQueue.length = 0;
      const all = [...sessions.values(), ...(shared ? [shared] : [])];
      sessions.clear();
      held.clear();
      shared = undefined;
      await Promise.all(all.map((s) => s.client.stop()));
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
