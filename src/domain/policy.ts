import { z } from 'zod';
import { missedExcusing, type BusLoss } from './bus-losses';

/**
 * A health-check policy as a device or a group sets it: either field may be left to the level below
 * (the device's own value wins over its group's, which wins over the server setting).
 */
export interface PolicyFields {
  readonly maxConsecutiveMisses: number | null;
  readonly intervalMultiple: number | null;
  /** The p95 link latency (ms) past which its link is degraded (src/domain/link.ts). */
  readonly linkMaxP95Ms: number | null;
  /** The share of rounds missed past which its link is degraded. */
  readonly linkMaxMissShare: number | null;
}

export type PolicySource = 'device' | 'group' | 'server';

/** The policy in force for one device, each value with the level it came from. */
export type EffectivePolicy = {
  readonly [K in keyof PolicyFields]: { readonly value: number; readonly source: PolicySource };
};

/** The server's settings under every device's and group's policy. */
export type ServerPolicy = { readonly [K in keyof PolicyFields]: number };

export const MAX_INTERVAL_MULTIPLE = 60;
export const MAX_CONSECUTIVE_MISSES = 100;
export const MAX_LINK_P95_MS = 60_000;

/** The fields a device or group may set; null hands the value back to the level below. */
export const policyFieldsSchema = z.strictObject({
  maxConsecutiveMisses: z.number().int().min(1).max(MAX_CONSECUTIVE_MISSES).nullable().optional(),
  intervalMultiple: z.number().int().min(1).max(MAX_INTERVAL_MULTIPLE).nullable().optional(),
  linkMaxP95Ms: z.number().int().min(1).max(MAX_LINK_P95_MS).nullable().optional(),
  linkMaxMissShare: z.number().gt(0).max(1).nullable().optional(),
});

/** The fields a validated body sets, every one left out as null. */
export const fullPolicy = (p: Partial<PolicyFields>): PolicyFields => ({
  maxConsecutiveMisses: p.maxConsecutiveMisses ?? null,
  intervalMultiple: p.intervalMultiple ?? null,
  linkMaxP95Ms: p.linkMaxP95Ms ?? null,
  linkMaxMissShare: p.linkMaxMissShare ?? null,
});

/** Group names: short, printable, usable in a query string unescaped. */
export const groupNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_" or "-", at most 64');

export function resolvePolicy(
  own: PolicyFields,
  group: PolicyFields | null,
  server: ServerPolicy,
): EffectivePolicy {
  const pick = (key: keyof PolicyFields) =>
    own[key] !== null
      ? { value: own[key], source: 'device' as const }
      : group && group[key] !== null
        ? { value: group[key], source: 'group' as const }
        : { value: server[key], source: 'server' as const };
  return {
    maxConsecutiveMisses: pick('maxConsecutiveMisses'),
    intervalMultiple: pick('intervalMultiple'),
    linkMaxP95Ms: pick('linkMaxP95Ms'),
    linkMaxMissShare: pick('linkMaxMissShare'),
  };
}

/**
 * How many consecutive valid rounds a device may miss before it is disconnected. A device checked
 * every k-th round is asked once in k rounds, so each miss it is allowed is worth k rounds: it is
 * disconnected once it has been silent for more than (misses + 1) * k - 1 valid rounds, within
 * (misses + 1) * k intervals of its last heartbeat.
 */
export function roundsAllowed(maxConsecutiveMisses: number, intervalMultiple: number): number {
  return (maxConsecutiveMisses + 1) * intervalMultiple - 1;
}

/** The most valid rounds of silence any policy allows (100 misses, every 60th round). */
export const MAX_ROUNDS_ALLOWED = roundsAllowed(MAX_CONSECUTIVE_MISSES, MAX_INTERVAL_MULTIPLE);

/** Whether a device checked every k-th round is sent HEALTHCHECK in round n (and counted as silent). */
export function isDue(round: number, intervalMultiple: number): boolean {
  return round % intervalMultiple === 0;
}

/** Which of these devices (id -> k) are not asked in round n. */
export function restingAt(round: number, multiples: ReadonlyMap<string, number>): string[] {
  const out: string[] = [];
  for (const [id, k] of multiples) if (!isDue(round, k)) out.push(id);
  return out;
}

/**
 * The candidates of round n that are stale: silent for more valid rounds than their own allowance
 * (`allowed`, from roundsAllowed), rounds in which the gateway lost their bus excused (a bounded few).
 */
export function staleAmong(
  n: number,
  candidates: readonly { deviceId: string; lastRound: number }[],
  validRounds: readonly number[],
  allowed: (deviceId: string) => number,
  lossesOf: (deviceId: string) => readonly BusLoss[] = () => [],
): { deviceId: string; lastRound: number; missedRounds: number }[] {
  const out: { deviceId: string; lastRound: number; missedRounds: number }[] = [];
  for (const c of candidates) {
    const missedRounds = missedExcusing(c.lastRound, n, validRounds, lossesOf(c.deviceId));
    if (missedRounds > allowed(c.deviceId)) out.push({ ...c, missedRounds });
  }
  return out;
}
