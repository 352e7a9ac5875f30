import { expectedProof, proofMatches } from '../domain/proofs';
import type { Logger } from '../logger';
import type { Inbound } from '../moth/codec';
import { setBounded } from './bounded-map';

/** Device -> its current token hash, the key its proofs are checked under (evicted oldest first). */
const KEYS_MAX = 100_000;
/** v2 frames held while their devices' keys are looked up (a burst after a start), per device and in all. */
const AWAITING_PER_DEVICE = 16;
const AWAITING_DEVICES_MAX = 20_000;

/** A heartbeat frame (a copy) and what it says: a token's hash, or a verified proof and its key. */
export interface Decoded {
  readonly frame: Buffer;
  readonly tokenHash: string;
  readonly round: number | undefined;
  readonly proven: boolean;
  /** The device a proof named (a shared-bus proof says whose it is). */
  readonly deviceId?: string;
}

/** A v2 proof as decoded. */
type Proof = Extract<Inbound, { kind: 'proof' }>;

/** A v2 frame waiting for its device's key from Postgres. */
interface AwaitingKey {
  readonly frame: Buffer;
  readonly msg: Proof;
  readonly busDevice: string | undefined;
  readonly heardRound: number;
}

export interface ProofKeysDeps {
  /** The nonce HEALTHCHECK carried for a recent round (v2 proofs are checked against it). */
  readonly roundNonce?: (round: number) => string | undefined;
  /** The current token hashes of live devices, from Postgres: the keys of their v2 proofs. */
  readonly lookupKeys?: (deviceIds: readonly string[]) => Promise<{ deviceId: string; tokenHash: string }[]>;
  /** A proof that waited for its key and holds: taken as a heartbeat heard then. */
  readonly accept: (heard: Decoded, busDevice: string | undefined, heardRound: number) => void;
  readonly count: (result: string) => void;
  readonly logger: Logger;
}

/** The keys of these devices, from Postgres; none when the lookup failed (logged). */
async function readKeys(deps: ProofKeysDeps, deviceIds: string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  try {
    for (const f of await deps.lookupKeys!(deviceIds)) found.set(f.deviceId, f.tokenHash);
  } catch (err) {
    deps.logger.error({ err: (err as Error).message }, 'proof key lookup failed');
  }
  return found;
}

/**
 * v2 proofs checked for the round they were heard in, under the key of the device they name (which
 * must be the bus's device). A key not held yet comes from Postgres: the frames wait for it (those
 * of one turn in one query), then are taken.
 */
export function createProofKeys(deps: ProofKeysDeps) {
  const { count } = deps;
  const keys = new Map<string, string>();
  let awaiting = new Map<string, AwaitingKey[]>();
  let lookup: Promise<void> | undefined;
  /** Revocations taken so far: a key read while one came in is used once, not kept. */
  let revocations = 0;

  /** The heartbeat a proof stands for when it holds under `key` for the round heard; else counted. */
  function verified(frame: Buffer, msg: Proof, key: string, heardRound: number): Decoded | undefined {
    const nonce = msg.round === heardRound ? deps.roundNonce?.(heardRound) : undefined;
    if (nonce === undefined || !proofMatches(msg.proof, expectedProof(key, msg.round, nonce)))
      return void count('bad_proof');
    return { frame, tokenHash: key, round: undefined, proven: true, deviceId: msg.deviceId };
  }

  function awaitKey(frame: Buffer, msg: Proof, busDevice: string | undefined, heardRound: number) {
    let list = awaiting.get(msg.deviceId);
    if (!list) {
      if (awaiting.size >= AWAITING_DEVICES_MAX || !deps.lookupKeys) return count('unknown_token');
      awaiting.set(msg.deviceId, (list = []));
    }
    if (list.length >= AWAITING_PER_DEVICE) return count('unknown_token');
    list.push({ frame: Buffer.from(frame), msg, busDevice, heardRound });
    lookup ??= lookupKeys();
  }

  async function lookupKeys(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    const waiting = awaiting;
    awaiting = new Map();
    const revocationsBefore = revocations;
    const found = await readKeys(deps, [...waiting.keys()]);
    if (revocations === revocationsBefore) for (const [id, key] of found) setBounded(keys, KEYS_MAX, id, key);
    for (const [id, list] of waiting) {
      const key = found.get(id);
      for (const w of list) {
        const decoded =
          key === undefined ? void count('unknown_token') : verified(w.frame, w.msg, key, w.heardRound);
        if (decoded) deps.accept(decoded, w.busDevice, w.heardRound);
      }
    }
    lookup = awaiting.size > 0 ? lookupKeys() : undefined;
  }

  return {
    /** What a proof heard on the bus of `busDevice` says now; undefined when refused (counted) or waiting. */
    read(frame: Buffer, msg: Proof, busDevice: string | undefined, heardRound: number): Decoded | undefined {
      if (busDevice !== undefined && msg.deviceId !== busDevice) return void count('misplaced');
      // As for an echoed round: a proof for an older round keeps nobody alive (and its nonce is gone).
      if (msg.round < heardRound) return void count('stale');
      // Refused before its key is looked up: no proof for another round, or one without a nonce, holds.
      if (msg.round !== heardRound || deps.roundNonce?.(heardRound) === undefined)
        return void count('bad_proof');
      const key = keys.get(msg.deviceId);
      if (key === undefined) return void awaitKey(frame, msg, busDevice, heardRound);
      return verified(frame, msg, key, heardRound);
    },
    /** The lookup frames are waiting for, if any (they are part of what has been taken). */
    pending: () => lookup,
    /** The device's token was revoked: its key is gone. */
    forget(deviceId: string): void {
      revocations++;
      keys.delete(deviceId);
    },
    clear(): void {
      revocations++;
      keys.clear();
    },
  };
}
export type ProofKeys = ReturnType<typeof createProofKeys>;
