import { timingSafeEqual } from 'node:crypto';
import { rememberingTokenHash, tokenHash } from '../domain/credentials';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import { decodeInbound, type Inbound } from '../moth/codec';
import type { CachedToken, HeardBatch, HeartbeatInput, Liveness } from '../redis/liveness';
import { createBatchWriter } from './batch-writer';
import { createProofKeys, type Decoded, type ProofKeys } from './proof-keys';
import { createRoundMemory, type RoundMemory } from './round-memory';
import { createTokenDirectory, type TokenDirectory } from './token-directory';
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
 * A frame's way: `push` (the turn's budget) -> `readFrame` (decoded, or the device's last frame
 * again) -> `acceptHeard` (counted from the round's memory, a repeat of one on its way, or added to a
 * batch) -> `writeBatch` (Redis, then what it made of the batch: counts, refusals, connects, the
 * round's memory). A revoked token leaves the memory at once (`revoke`, pushed by Redis pub/sub).
 */
export function createHeartbeatIngest(deps: HeartbeatIngestDeps) {
  const count: Count = (result, n = 1) => deps.metrics.heartbeats.inc({ result }, n);
  const tokens = createTokenDirectory(deps);
  const memory = createRoundMemory<Arrived>();
  const tally = createTally(count);
  const turn = createTurnBudget(FRAMES_PER_TURN);
  const proofs = createProofKeys({
    ...deps,
    count,
    accept: (heard, bus, round) => acceptHeard(accepting, heard, bus, round),
  });
  const sharedHash = rememberingTokenHash(SHARED_HASHES_MAX);
  const reading: Reading = { deps, count, memory, proofs, sharedHash };
  const writing: Writing = { deps, count, tokens, memory, exposed: new Set(), revocations: 0 };
  const writer = createBatchWriter<Arrived>({
    name: 'heartbeat batch',
    write: (batch) => writeBatch(writing, batch),
    maxBatch: deps.maxBatch ?? 1000,
    maxDelayMs: deps.maxDelayMs ?? 5,
    // Frames waiting for their keys are part of what has been taken.
    arriving: () => proofs.pending(),
    onBackpressure: deps.onBackpressure,
    logger: deps.logger,
  });
  const accepting: Accepting = { deps, count, tokens, memory, tally, writer };

  /**
   * Takes one frame heard on the bus of `deviceId` (undefined: the shared bus). Returns false when
   * this turn of the event loop has taken its share: the caller stops reading that session until
   * the next turn.
   */
  function push(frame: Buffer, deviceId?: string, text = false): boolean {
    const more = turn.take();
    memory.turnTo(deps.openRound());
    const heard = readFrame(reading, frame, deviceId, memory.round());
    if (heard) acceptHeard(accepting, heard, deviceId, memory.round(), text && !heard.proven);
    return more;
  }

  return {
    push,
    /** Resolves when every heartbeat taken so far is written and counted. */
    flush: () => writer.flush().then(tally.settle),
    /** A token was revoked (rotated, or its device deleted): nothing of it stays in memory. */
    revoke(deviceId: string, revokedHash: string): void {
      writing.revocations++;
      memory.revoked(deviceId);
      tokens.forget(revokedHash);
      proofs.forget(deviceId);
      writing.exposed.delete(deviceId);
    },
    /** Forgets what this round heard of a device (it said goodbye): its next heartbeat goes to Redis. */
    forgetDevice: (deviceId: string) => memory.forgetDevice(deviceId),
    /** Revocations may have been missed (the channel reconnected): forget every token held. */
    forgetTokens(): void {
      writing.revocations++;
      memory.forget();
      tokens.clear();
      proofs.clear();
    },
    async close(): Promise<void> {
      tally.close();
      await writer.flush();
      tally.settle();
    },
  };
}
export type HeartbeatIngest = ReturnType<typeof createHeartbeatIngest>;

type Count = (result: string, n?: number) => void;

const arrival = (
  heard: Decoded,
  deviceId: string | undefined,
  heardRound: number,
  text: boolean,
): Arrived => ({
  tokenHash: heard.tokenHash,
  deviceId: deviceId ?? heard.deviceId,
  shared: deviceId === undefined,
  heardRound,
  round: heard.round,
  proven: heard.proven,
  text,
  repeats: 0,
  at: performance.now(),
});

/** Frames taken in this turn of the event loop: `take` answers false once past `max`. */
function createTurnBudget(max: number) {
  let taken = 0;
  const nextTurn = () => (taken = 0);
  return {
    take(): boolean {
      if (taken++ === 0) setImmediate(nextTurn);
      return taken <= max;
    },
  };
}

/** Heartbeats settled in memory, added to the metrics every TALLY_PERIOD_MS (per heartbeat costs too much). */
function createTally(count: Count) {
  const tally = { accepted: 0, stale: 0 };
  const settle = () => {
    if (tally.accepted) count('accepted', tally.accepted);
    if (tally.stale) count('stale', tally.stale);
    tally.accepted = tally.stale = 0;
  };
  const timer = setInterval(settle, TALLY_PERIOD_MS);
  timer.unref();
  return {
    add(kind: 'accepted' | 'stale'): void {
      tally[kind]++;
    },
    settle,
    close: () => clearInterval(timer),
  };
}

/** What accepting a heartbeat needs. */
interface Accepting {
  readonly deps: HeartbeatIngestDeps;
  readonly count: Count;
  readonly tokens: TokenDirectory;
  readonly memory: RoundMemory<Arrived>;
  readonly tally: ReturnType<typeof createTally>;
  readonly writer: ReturnType<typeof createBatchWriter<Arrived>>;
}

/** A heartbeat whose credential is read: counted from memory, or queued for Redis. */
function acceptHeard(
  a: Accepting,
  heard: Decoded,
  deviceId: string | undefined,
  heardRound: number,
  text = false,
): void {
  const { deps, count, tokens, memory, tally, writer } = a;
  const { tokenHash: hash, round, proven } = heard;
  if (tokens.refused(hash)) {
    if (deviceId !== undefined) deps.refused?.([{ deviceId, code: 'UNKNOWN_TOKEN' }]);
    return count('unknown_token');
  }
  const device = deviceId ?? heard.deviceId ?? tokens.deviceOf(hash);
  const staleEcho = round !== undefined && round < heardRound;
  // The memory is of the round open now; a proof that waited for its key may be of the one before.
  // A token in a text frame always goes to Redis: only an accepted one is reported as exposed.
  const current = heardRound === memory.round() && !text;
  if (current && device !== undefined && memory.recorded(device) === credential(hash, proven))
    return tally.add(staleEcho ? 'stale' : 'accepted');
  const waiting = !current || device === undefined || staleEcho ? undefined : memory.pending(device);
  if (
    waiting?.tokenHash === hash &&
    waiting.proven === proven &&
    waiting.shared === (deviceId === undefined)
  ) {
    waiting.repeats++;
    return;
  }
  const item = arrival(heard, deviceId, heardRound, text);
  if (current && device !== undefined && !staleEcho) memory.hold(device, item);
  writer.add(item);
}

/** What reading a frame needs. */
interface Reading {
  readonly deps: Pick<HeartbeatIngestDeps, 'goodbye'>;
  readonly count: Count;
  readonly memory: RoundMemory<Arrived>;
  readonly proofs: ProofKeys;
  readonly sharedHash: (token: string) => string;
}

/** What a frame says, from memory when its bus repeats the last one; undefined (counted) if no heartbeat. */
function readFrame(r: Reading, frame: Buffer, deviceId: string | undefined, heardRound: number) {
  const last = deviceId === undefined ? undefined : r.memory.lastFrame(deviceId);
  if (last && last.frame.length === frame.length && timingSafeEqual(last.frame, frame)) return last;
  const msg = decodeInbound(frame);
  if (msg.kind === 'proof') {
    const decoded = r.proofs.read(frame, msg, deviceId, heardRound);
    if (decoded && deviceId !== undefined && heardRound === r.memory.round())
      r.memory.keepFrame(deviceId, decoded);
    return decoded;
  }
  if (msg.kind === 'goodbye') {
    r.count('goodbye');
    r.deps.goodbye?.(msg, deviceId);
    return undefined;
  }
  if (msg.kind !== 'heartbeat') return void r.count(msg.kind);
  const hash = deviceId === undefined ? r.sharedHash(msg.token) : tokenHash(msg.token);
  const decoded: Decoded = { frame, tokenHash: hash, round: msg.round, proven: false };
  if (deviceId !== undefined) r.memory.keepFrame(deviceId, decoded);
  return decoded;
}

/** What writing a batch needs. */
interface Writing {
  readonly deps: HeartbeatIngestDeps;
  readonly count: Count;
  readonly tokens: TokenDirectory;
  readonly memory: RoundMemory<Arrived>;
  /** Devices already reported for a token sent in a text frame (until their token changes). */
  readonly exposed: Set<string>;
  /** Revocations taken so far: a batch written while one came in is not remembered. */
  revocations: number;
}

/** Writes a batch to Redis, then acts on what Redis made of it. */
async function writeBatch(w: Writing, arrived: Arrived[]): Promise<void> {
  const items = await placeShared(w, arrived);
  const revocationsBefore = w.revocations;
  let outcome: Outcome;
  try {
    outcome = outcomeOf(await w.deps.liveness.recordHeartbeats(items));
  } catch (err) {
    w.memory.settle(arrived);
    w.count(
      'write_failed',
      arrived.reduce((n, a) => n + 1 + a.repeats, 0),
    );
    w.deps.onWriteFailure?.();
    w.deps.logger.error({ err: (err as Error).message, lost: items.length }, 'could not record heartbeats');
    return;
  }
  if (outcome.unknownItems.length > 0) await placeUnknown(w, outcome);
  countRepeats(items, outcome);
  w.memory.settle(arrived);
  countOutcome(w.count, outcome);
  noteCredentials(w, items, outcome);
  const { refused } = outcome;
  if (refused.size > 0) w.deps.refused?.(refusalsOf(outcome));
  for (const i of refused) w.tokens.forget(i.tokenHash);
  if (w.revocations === revocationsBefore) remember(w.memory, items, refused);
  if (w.deps.heardOn) reportBuses(w.deps.heardOn, items, arrived, refused);
  if (outcome.fresh.length > 0) w.deps.connect(outcome.fresh);
  if (w.deps.answered) w.deps.answered(answersOf(items, refused));
}

/** Counted per batch, not per heartbeat: this is the hot path. */
function countOutcome(count: Count, o: Outcome): void {
  if (o.heard) count('accepted', o.heard);
  if (o.stale) count('stale', o.stale);
  if (o.unknown + o.revoked) count('unknown_token', o.unknown + o.revoked);
  if (o.misplaced) count('misplaced', o.misplaced);
  if (o.downgrades) count('downgrade', o.downgrades);
}

/**
 * Tokens the cache did not know, resolved from Postgres: a device of another shard than the bus's
 * is misplaced (without asking Redis again), one of this bus is written again, an unknown refused.
 */
async function placeUnknown(w: Writing, o: Outcome): Promise<void> {
  const unknownItems = o.unknownItems;
  const resolved = await w.tokens.resolve([...new Set(unknownItems.map((i) => i.tokenHash))]);
  const foreign = unknownItems.filter((i) => (resolved.get(i.tokenHash) ?? i.deviceId) !== i.deviceId);
  const retry = unknownItems.filter((i) => resolved.get(i.tokenHash) === i.deviceId);
  o.unknown -= retry.length + foreign.length;
  o.misplaced += foreign.length;
  for (const i of foreign) {
    o.refused.add(i);
    o.misplacedOnes.add(i);
  }
  if (retry.length > 0) addRetried(o, await w.deps.liveness.recordHeartbeats(retry));
  for (const i of unknownItems) if (!resolved.has(i.tokenHash)) o.refused.add(i);
}

/** Tokens accepted in text frames are reported once per device; proofs mark their device proofs-only. */
function noteCredentials(w: Writing, items: readonly Placed[], o: Outcome): void {
  const inText = items.filter((i) => i.text && !o.refused.has(i));
  if (inText.length > 0) {
    w.deps.metrics.textFrameHeartbeats.inc(inText.length);
    const newly = [...new Set(inText.map((i) => i.deviceId))].filter((d) => !w.exposed.has(d));
    for (const d of newly) w.exposed.add(d);
    if (newly.length > 0) w.deps.tokenExposed?.(newly);
  }
  if (o.upgraded.length > 0)
    w.deps.requireProofs?.(o.upgraded.map((i) => ({ deviceId: i.deviceId, tokenHash: i.tokenHash })));
}

/**
 * Notes the devices this batch recorded for the round remembered. Refused holds every heartbeat that
 * did not count (revoked, misplaced, unknown after the lookup); stale echoes recorded nothing.
 */
function remember(memory: RoundMemory<Arrived>, items: HeartbeatInput[], refused: Set<HeartbeatInput>) {
  for (const i of items) {
    if (refused.has(i) || (i.round !== undefined && i.round < i.heardRound)) continue;
    memory.record(i.deviceId, i.heardRound, credential(i.tokenHash, i.proven === true));
  }
}

/** Which bus each accepted heartbeat came on, for the devices still on the shared one. */
function reportBuses(
  heardOn: NonNullable<HeartbeatIngestDeps['heardOn']>,
  items: HeartbeatInput[],
  arrived: Arrived[],
  refused: Set<HeartbeatInput>,
) {
  const own: string[] = [];
  const shared: string[] = [];
  const onShared = new Set(arrived.filter((a) => a.shared).map((a) => a.tokenHash));
  for (const i of items) {
    if (refused.has(i)) continue;
    (onShared.has(i.tokenHash) ? shared : own).push(i.deviceId);
  }
  if (own.length) heardOn(own, 'own');
  if (shared.length) heardOn(shared, 'shared');
}

/** Names the device of each shared-bus heartbeat from its token (cache, then Postgres). */
async function placeShared(w: Writing, arrived: Arrived[]): Promise<Placed[]> {
  const missing = arrived.filter(
    (a) => a.deviceId === undefined && w.tokens.deviceOf(a.tokenHash) === undefined,
  );
  if (missing.length > 0) {
    const hashes = [...new Set(missing.map((a) => a.tokenHash))];
    const known = await w.tokens.resolve(hashes);
    for (const h of hashes) if (!known.has(h)) w.count('unknown_token');
  }
  const out: Placed[] = [];
  for (const a of arrived) {
    a.deviceId ??= w.tokens.deviceOf(a.tokenHash);
    if (a.deviceId !== undefined) out.push(a as Placed);
  }
  return out;
}

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

/** What Redis made of a batch, as counted so far. `refused` holds every heartbeat that did not count. */
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
