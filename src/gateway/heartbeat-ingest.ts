import { timingSafeEqual } from 'node:crypto';
import { rememberingTokenHash, tokenHash } from '../domain/credentials';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import { decodeInbound, type Inbound } from '../moth/codec';
import type { CachedToken, HeardBatch, HeartbeatInput, Liveness } from '../redis/liveness';
import { createProofKeys, type Decoded } from './proof-keys';
import { createTokenDirectory } from './token-directory';
import type { Refusal } from './refusal-notices';

export interface HeartbeatIngestDeps {
  readonly liveness: Pick<Liveness, 'recordHeartbeats' | 'cacheTokens' | 'forgetDevice'>;
  /** The round this gateway has open for its shards (a heartbeat counts for it). */
  readonly openRound: () => number;
  /** Called with the devices whose heartbeats were accepted, and the bus they came on. */
  readonly heardOn?: (deviceIds: readonly string[], bus: 'own' | 'shared') => void;
  /** Resolves token hashes the cache does not know, from Postgres. */
  readonly lookupTokens: (hashes: readonly string[]) => Promise<CachedToken[]>;
  /** The nonce HEALTHCHECK carried for a recent round (v2 proofs are checked against it). */
  readonly roundNonce?: (round: number) => string | undefined;
  /** The current token hashes of live devices, from Postgres: the keys of their v2 proofs. */
  readonly lookupKeys?: (deviceIds: readonly string[]) => Promise<{ deviceId: string; tokenHash: string }[]>;
  /**
   * Called with devices whose token came, accepted, in a text frame: Moth keeps a text frame as the
   * track's MIME and replays it, token included, to every later joiner. Once per device and token.
   */
  readonly tokenExposed?: (deviceIds: readonly string[]) => void;
  /** Called with devices heard with a proof for the first time: from now on they take proofs only. */
  readonly requireProofs?: (entries: readonly { deviceId: string; tokenHash: string }[]) => void;
  /** A GOODBYE heard on the bus of `deviceId` (undefined: the shared bus), to be checked and acted on. */
  readonly goodbye?: (message: Goodbye, deviceId: string | undefined) => void;
  /**
   * Takes devices absent from the connected index (a first or recovered heartbeat) to be connected.
   * It must not make the heartbeat's path wait: a fleet arriving at once would stall the writes.
   */
  readonly connect: (fresh: readonly { deviceId: string; round: number }[]) => void;
  /**
   * Answers that counted for the round open now, heard on their device's own bus at `at`
   * (`performance.now()`): the link meter's samples. Told after `connect`, for the same batch.
   */
  readonly answered?: (answers: readonly { deviceId: string; round: number; at: number }[]) => void;
  /** Heartbeats refused on devices' own buses, and why (the device may be told: refusal-notices.ts). */
  readonly refused?: (refusals: readonly Refusal[]) => void;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly maxBatch?: number;
  readonly maxDelayMs?: number;
  /** Called when a batch could not be written: this gateway did not hear that round reliably. */
  readonly onWriteFailure?: () => void;
  /**
   * Backpressure: called with true when writes fall behind (stop reading frames), false when they
   * caught up. Without it a flood would queue in memory without bound.
   */
  readonly onBackpressure?: (behind: boolean) => void;
}

/** Batches waiting for Redis beyond which reading pauses (a round's first heartbeats come in a burst). */
const MAX_BATCHES_IN_FLIGHT = 32;
/**
 * Batches written at once: Redis runs one script at a time, but the next ones already on the wire
 * keep it busy while we parse an answer and read more frames (3 measured best in `npm run bench`).
 * Order between batches does not matter (a device's heard round only ever goes up).
 */
const WRITERS = 3;

/**
 * Tokens whose hash the shared bus remembers: a robot heard there every round costs a lookup, not a
 * hash. Only tokens every member of that bus reads anyway; every check (revocation, refusal, the
 * round) still runs on the hash.
 */
const SHARED_HASHES_MAX = 100_000;
/**
 * Frames taken in one turn of the event loop beyond which every session pauses until the next turn.
 * Most frames end in memory, so nothing else would stop a flood (a babbling robot, a burst after an
 * outage) from holding the loop, and lease renewals, rounds and the ops endpoint with it (the
 * longest turn with 10,000 sessions flooding: 172-215 ms in `npm run bench`).
 */
const FRAMES_PER_TURN = 50_000;
/** How often counts of heartbeats settled in memory reach the metrics. */
const TALLY_PERIOD_MS = 100;

/** A heartbeat as it arrived: on a device's own bus (`deviceId`), or on the shared bus (none). */
interface Arrived {
  readonly tokenHash: string;
  /** Set on arrival for a device's own bus; for the shared bus once the token names a device. */
  deviceId: string | undefined;
  readonly shared: boolean;
  readonly heardRound: number;
  readonly round?: number | undefined;
  /** It came as a verified v2 proof (`tokenHash` is then the key it was checked under). */
  readonly proven: boolean;
  /** It came in a text frame. */
  readonly text: boolean;
  /** Heartbeats of the same device, token and round that came while this one was being written. */
  repeats: number;
  /** When it was taken (`performance.now()`). */
  readonly at: number;
}

/** What a device's memory of the round holds: a token's hash, or a proof's key marked as such. */
const credential = (hash: string, proven: boolean) => (proven ? `${hash}!` : hash);

export type Goodbye = Extract<Inbound, { kind: 'goodbye' }>;

/** A heartbeat whose device is known. */
type Placed = Arrived & { deviceId: string };

/**
 * Heartbeat ingestion: decodes frames, hashes tokens, and records heard rounds in Redis in batches
 * (one round trip per shard in a batch). A heartbeat counts only with the token of the device whose
 * bus carried it. A device absent from the connected index is connected at once. Malformed frames,
 * unknown, revoked or misplaced tokens and other message types are dropped and counted.
 *
 * A device is written once per round: Redis confirms its token and records it for the open round,
 * and its later heartbeats of that round, with the same token, are counted in memory (they could not
 * change anything). A revoked token leaves that memory at once (`revoke`, pushed by Redis pub/sub),
 * and the memory holds one round only, so even a lost revocation message lets a revoked token record
 * nothing: the next round's first heartbeat meets the tombstone in Redis.
 */
export function createHeartbeatIngest(deps: HeartbeatIngestDeps) {
  const maxBatch = deps.maxBatch ?? 1000;
  const maxDelayMs = deps.maxDelayMs ?? 5;
  let batch: Arrived[] = [];
  let timer: NodeJS.Timeout | undefined;
  const writers: Promise<void>[] = Array.from({ length: WRITERS }, () => Promise.resolve());
  let next = 0;
  let queued = 0;
  let paused = false;
  let turnFrames = 0;
  const nextTurn = () => (turnFrames = 0);
  const count = (result: string, n = 1) => deps.metrics.heartbeats.inc({ result }, n);
  const tokens = createTokenDirectory(deps);
  const sharedHash = rememberingTokenHash(SHARED_HASHES_MAX);
  const proofs = createProofKeys({
    ...deps,
    count,
    accept: (heard, bus, round) => accept(heard, bus, round),
  });
  /** Devices already reported for a token sent in a text frame (until their token changes). */
  const exposed = new Set<string>();
  /** Device -> the token hash Redis accepted from it in `recordedRound`, the round open now. */
  let recorded = new Map<string, string>();
  /** Device -> its heartbeat of `recordedRound` on its way to Redis: repeats wait for its answer. */
  let pending = new Map<string, Arrived>();
  let recordedRound = 0;
  /**
   * Device -> its last heartbeat frame of this round (a copy) and what it decoded to: a robot that
   * repeats itself (babbling, or replaying after a stall) costs a comparison, not a decode and a hash.
   */
  let lastFrames = new Map<string, Decoded>();
  const forgetRound = () => {
    recorded = new Map();
    pending = new Map();
    lastFrames = new Map();
  };
  /** Revocations taken so far: a batch written while one came in is not remembered. */
  let revocations = 0;
  /** Heartbeats settled in memory, not yet added to the metrics (per heartbeat costs too much). */
  const tally = { accepted: 0, stale: 0 };
  const settleTally = () => {
    if (tally.accepted) count('accepted', tally.accepted);
    if (tally.stale) count('stale', tally.stale);
    tally.accepted = tally.stale = 0;
  };
  const tallyTimer = setInterval(settleTally, TALLY_PERIOD_MS);
  tallyTimer.unref();

  /**
   * Takes one frame heard on the bus of `deviceId` (undefined: the shared bus). Returns false when
   * this turn of the event loop has taken its share: the caller stops reading that session until
   * the next turn.
   */
  function push(frame: Buffer, deviceId?: string, text = false): boolean {
    if (turnFrames++ === 0) setImmediate(nextTurn);
    take(frame, deviceId, text);
    return turnFrames <= FRAMES_PER_TURN;
  }

  function take(frame: Buffer, deviceId: string | undefined, text: boolean): void {
    const heardRound = deps.openRound();
    if (heardRound !== recordedRound) {
      forgetRound();
      recordedRound = heardRound;
    }
    const heard = read(frame, deviceId, heardRound);
    if (heard) accept(heard, deviceId, heardRound, text && !heard.proven);
  }

  /** A heartbeat whose credential is read: counted from memory, or queued for Redis. */
  function accept(heard: Decoded, deviceId: string | undefined, heardRound: number, text = false): void {
    const { tokenHash: hash, round, proven } = heard;
    if (tokens.refused(hash)) {
      if (deviceId !== undefined) deps.refused?.([{ deviceId, code: 'UNKNOWN_TOKEN' }]);
      return count('unknown_token');
    }
    const device = deviceId ?? heard.deviceId ?? tokens.deviceOf(hash);
    const staleEcho = round !== undefined && round < heardRound;
    // The memory is of the round open now; a proof that waited for its key may be of the one before.
    // A token in a text frame always goes to Redis: only an accepted one is reported as exposed.
    const current = heardRound === recordedRound && !text;
    if (current && device !== undefined && recorded.get(device) === credential(hash, proven)) {
      if (staleEcho) tally.stale++;
      else tally.accepted++;
      return;
    }
    const waiting = !current || device === undefined || staleEcho ? undefined : pending.get(device);
    if (
      waiting &&
      waiting.tokenHash === hash &&
      waiting.proven === proven &&
      waiting.shared === (deviceId === undefined)
    ) {
      waiting.repeats++;
      return;
    }
    const item: Arrived = {
      tokenHash: hash,
      deviceId: deviceId ?? heard.deviceId,
      shared: deviceId === undefined,
      heardRound,
      round,
      proven,
      text,
      repeats: 0,
      at: performance.now(),
    };
    if (current && device !== undefined && !staleEcho) pending.set(device, item);
    batch.push(item);
    if (batch.length >= maxBatch) void flush();
    else timer ??= setTimeout(() => void flush(), maxDelayMs);
  }

  /** What a frame says, from memory when its bus repeats the last one; undefined (counted) if no heartbeat. */
  function read(frame: Buffer, deviceId: string | undefined, heardRound: number): Decoded | undefined {
    const last = deviceId === undefined ? undefined : lastFrames.get(deviceId);
    if (last && last.frame.length === frame.length && timingSafeEqual(last.frame, frame)) return last;
    const msg = decodeInbound(frame);
    if (msg.kind === 'proof') {
      const decoded = proofs.read(frame, msg, deviceId, heardRound);
      if (decoded && deviceId !== undefined && heardRound === recordedRound)
        lastFrames.set(deviceId, { ...decoded, frame: Buffer.from(frame) });
      return decoded;
    }
    if (msg.kind === 'goodbye') {
      count('goodbye');
      deps.goodbye?.(msg, deviceId);
      return undefined;
    }
    if (msg.kind !== 'heartbeat') {
      count(msg.kind);
      return undefined;
    }
    const hash = deviceId === undefined ? sharedHash(msg.token) : tokenHash(msg.token);
    const decoded = { frame, tokenHash: hash, round: msg.round, proven: false };
    // A copy: the frame is a view of a whole read, which it would keep.
    if (deviceId !== undefined) lastFrames.set(deviceId, { ...decoded, frame: Buffer.from(frame) });
    return decoded;
  }

  /** Starts writing the current batch; resolves when every batch started so far is written. */
  function flush(): Promise<void> {
    // Frames waiting for their keys are part of what has been taken.
    const lookup = proofs.pending();
    if (lookup) return lookup.then(flush);
    clearTimeout(timer);
    timer = undefined;
    if (batch.length === 0) return Promise.all(writers).then(() => {});
    const items = batch;
    batch = [];
    queued++;
    if (queued > MAX_BATCHES_IN_FLIGHT && !paused) {
      paused = true;
      deps.onBackpressure?.(true);
    }
    const slot = next++ % WRITERS;
    writers[slot] = writers[slot]!.then(() =>
      write(items)
        .catch((err: unknown) => {
          deps.logger.error({ err: (err as Error).message }, 'heartbeat batch failed');
        })
        .finally(() => {
          queued--;
          if (paused && queued <= 1) {
            paused = false;
            deps.onBackpressure?.(false);
          }
        }),
    );
    return Promise.all(writers).then(() => {});
  }

  async function write(arrived: Arrived[]): Promise<void> {
    const items = await placeShared(arrived);
    const revocationsBefore = revocations;
    let outcome: Outcome;
    try {
      outcome = outcomeOf(await deps.liveness.recordHeartbeats(items));
    } catch (err) {
      settlePending(arrived);
      count(
        'write_failed',
        arrived.reduce((n, a) => n + 1 + a.repeats, 0),
      );
      deps.onWriteFailure?.();
      deps.logger.error({ err: (err as Error).message, lost: items.length }, 'could not record heartbeats');
      return;
    }
    if (outcome.unknownItems.length > 0) await placeUnknown(outcome);
    countRepeats(items, outcome);
    settlePending(arrived);
    // Counted per batch, not per heartbeat: this is the hot path.
    const { heard, stale, unknown, revoked, misplaced, downgrades, refused } = outcome;
    if (heard) count('accepted', heard);
    if (stale) count('stale', stale);
    if (unknown + revoked) count('unknown_token', unknown + revoked);
    if (misplaced) count('misplaced', misplaced);
    if (downgrades) count('downgrade', downgrades);
    noteCredentials(items, outcome);
    if (refused.size > 0) deps.refused?.(refusalsOf(outcome));
    if (refused.size > 0) for (const i of refused) tokens.forget(i.tokenHash);
    if (revocations === revocationsBefore) remember(items, refused);
    if (deps.heardOn) reportBuses(items, arrived, refused);
    if (outcome.fresh.length > 0) deps.connect(outcome.fresh);
    if (deps.answered) deps.answered(answersOf(items, refused));
  }

  /**
   * Tokens the cache did not know, resolved from Postgres: a device of another shard than the bus's
   * is misplaced (without asking Redis again), one of this bus is written again, an unknown refused.
   */
  async function placeUnknown(o: Outcome): Promise<void> {
    const unknownItems = o.unknownItems;
    const resolved = await tokens.resolve([...new Set(unknownItems.map((i) => i.tokenHash))]);
    const foreign = unknownItems.filter((i) => (resolved.get(i.tokenHash) ?? i.deviceId) !== i.deviceId);
    const retry = unknownItems.filter((i) => resolved.get(i.tokenHash) === i.deviceId);
    o.unknown -= retry.length + foreign.length;
    o.misplaced += foreign.length;
    for (const i of foreign) {
      o.refused.add(i);
      o.misplacedOnes.add(i);
    }
    if (retry.length > 0) addRetried(o, await deps.liveness.recordHeartbeats(retry));
    for (const i of unknownItems) if (!resolved.has(i.tokenHash)) o.refused.add(i);
  }

  /** Tokens accepted in text frames are reported once per device; proofs mark their device proofs-only. */
  function noteCredentials(items: readonly Placed[], o: Outcome): void {
    const inText = items.filter((i) => i.text && !o.refused.has(i));
    if (inText.length > 0) {
      deps.metrics.textFrameHeartbeats.inc(inText.length);
      const newly = [...new Set(inText.map((i) => i.deviceId))].filter((d) => !exposed.has(d));
      for (const d of newly) exposed.add(d);
      if (newly.length > 0) deps.tokenExposed?.(newly);
    }
    if (o.upgraded.length > 0)
      deps.requireProofs?.(o.upgraded.map((i) => ({ deviceId: i.deviceId, tokenHash: i.tokenHash })));
  }

  /** Heartbeats written (or lost): later ones of their device go to Redis or to memory again. */
  function settlePending(arrived: Arrived[]) {
    for (const a of arrived)
      if (a.deviceId !== undefined && pending.get(a.deviceId) === a) pending.delete(a.deviceId);
  }

  /**
   * Notes the devices this batch recorded for the round open now. Refused holds every heartbeat that
   * did not count (revoked, misplaced, unknown after the lookup); stale echoes recorded nothing.
   */
  function remember(items: HeartbeatInput[], refused: Set<HeartbeatInput>) {
    for (const i of items) {
      if (i.heardRound !== recordedRound || refused.has(i)) continue;
      if (i.round !== undefined && i.round < i.heardRound) continue;
      recorded.set(i.deviceId, credential(i.tokenHash, i.proven === true));
    }
  }

  /** Which bus each accepted heartbeat came on, for the devices still on the shared one. */
  function reportBuses(items: HeartbeatInput[], arrived: Arrived[], refused: Set<HeartbeatInput>) {
    const own: string[] = [];
    const shared: string[] = [];
    const onShared = new Set(arrived.filter((a) => a.shared).map((a) => a.tokenHash));
    for (const i of items) {
      if (refused.has(i)) continue;
      (onShared.has(i.tokenHash) ? shared : own).push(i.deviceId);
    }
    if (own.length) deps.heardOn!(own, 'own');
    if (shared.length) deps.heardOn!(shared, 'shared');
  }

  /** Names the device of each shared-bus heartbeat from its token (cache, then Postgres). */
  async function placeShared(arrived: Arrived[]): Promise<Placed[]> {
    const missing = arrived.filter(
      (a) => a.deviceId === undefined && tokens.deviceOf(a.tokenHash) === undefined,
    );
    if (missing.length > 0) {
      const hashes = [...new Set(missing.map((a) => a.tokenHash))];
      const known = await tokens.resolve(hashes);
      for (const h of hashes) if (!known.has(h)) count('unknown_token');
    }
    const out: Placed[] = [];
    for (const a of arrived) {
      a.deviceId ??= tokens.deviceOf(a.tokenHash);
      if (a.deviceId !== undefined) out.push(a as Placed);
    }
    return out;
  }

  return {
    push,
    /** Resolves when every heartbeat taken so far is written and counted. */
    async flush(): Promise<void> {
      await flush();
      settleTally();
    },
    /** A token was revoked (rotated, or its device deleted): nothing of it stays in memory. */
    revoke(deviceId: string, revokedHash: string): void {
      revocations++;
      recorded.delete(deviceId);
      // Later heartbeats go to Redis on their own, rather than count as one written before.
      pending.delete(deviceId);
      tokens.forget(revokedHash);
      proofs.forget(deviceId);
      exposed.delete(deviceId);
    },
    /** Forgets what this round heard of a device (it said goodbye): its next heartbeat goes to Redis. */
    forgetDevice(deviceId: string): void {
      recorded.delete(deviceId);
      pending.delete(deviceId);
      lastFrames.delete(deviceId);
    },
    /** Revocations may have been missed (the channel reconnected): forget every token held. */
    forgetTokens(): void {
      revocations++;
      forgetRound();
      tokens.clear();
      proofs.clear();
    },
    async close(): Promise<void> {
      clearInterval(tallyTimer);
      await flush();
      settleTally();
    },
  };
}
export type HeartbeatIngest = ReturnType<typeof createHeartbeatIngest>;

/** What Redis made of a batch, as counted so far. `refused` holds every heartbeat that did not count. */
/** Why each heartbeat refused on its device's own bus was (the shared bus names no device to tell). */
function refusalsOf(o: Outcome): Refusal[] {
  // The outcome's inputs are the heartbeats as they arrived.
  return [...o.refused]
    .filter((i) => !(i as Arrived).shared)
    .map((i) => ({
      deviceId: i.deviceId,
      code: o.downgraded.has(i) ? 'DOWNGRADE' : o.misplacedOnes.has(i) ? 'WRONG_BUS' : 'UNKNOWN_TOKEN',
    }));
}

interface Outcome {
  heard: number;
  stale: number;
  revoked: number;
  misplaced: number;
  unknown: number;
  downgrades: number;
  readonly unknownItems: readonly HeartbeatInput[];
  readonly fresh: { deviceId: string; round: number }[];
  readonly refused: Set<HeartbeatInput>;
  readonly downgraded: Set<HeartbeatInput>;
  readonly misplacedOnes: Set<HeartbeatInput>;
  readonly upgraded: HeartbeatInput[];
}

function outcomeOf(r: HeardBatch): Outcome {
  return {
    heard: r.heard,
    stale: r.stale,
    revoked: r.revoked,
    misplaced: r.misplaced,
    unknown: r.unknown.length,
    downgrades: r.downgraded.length,
    unknownItems: r.unknown,
    fresh: [...r.fresh],
    refused: new Set([...r.refused, ...r.downgraded]),
    downgraded: new Set(r.downgraded),
    misplacedOnes: new Set(r.refused.slice(r.revoked)),
    upgraded: [...r.upgraded],
  };
}

/** Adds what Redis made of heartbeats written again (their tokens now known): unknown ones are refused. */
function addRetried(o: Outcome, again: HeardBatch): void {
  o.heard += again.heard;
  o.stale += again.stale;
  o.revoked += again.revoked;
  o.misplaced += again.misplaced;
  o.unknown += again.unknown.length;
  o.downgrades += again.downgraded.length;
  for (const i of [...again.refused, ...again.unknown, ...again.downgraded]) o.refused.add(i);
  for (const i of again.refused.slice(again.revoked)) o.misplacedOnes.add(i);
  for (const i of again.downgraded) o.downgraded.add(i);
  o.upgraded.push(...again.upgraded);
  o.fresh.push(...again.fresh);
}

/** Repeats count as the heartbeat they waited for did. */
function countRepeats(items: readonly Placed[], o: Outcome): void {
  for (const i of items) {
    if (i.repeats === 0) continue;
    if (!o.refused.has(i)) o.heard += i.repeats;
    else if (o.misplacedOnes.has(i)) o.misplaced += i.repeats;
    else if (o.downgraded.has(i)) o.downgrades += i.repeats;
    else o.unknown += i.repeats;
  }
}

/** The heartbeats that counted for their round, as first heard on their own bus. */
function answersOf(items: readonly Placed[], refused: ReadonlySet<HeartbeatInput>) {
  const out: { deviceId: string; round: number; at: number }[] = [];
  for (const i of items) {
    if (i.shared || refused.has(i) || (i.round !== undefined && i.round < i.heardRound)) continue;
    out.push({ deviceId: i.deviceId, round: i.heardRound, at: i.at });
  }
  return out;
}
