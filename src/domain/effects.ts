/** Side effects of a disconnect, each run by its own queue and worker. */
export const DISCONNECT_EFFECTS = ['abort-task', 'stop-recording', 'stop-analysis-streams'] as const;
/** Side effects of a connect. */
export const CONNECT_EFFECTS = ['start-recording'] as const;

export type EffectKind = (typeof DISCONNECT_EFFECTS)[number] | (typeof CONNECT_EFFECTS)[number];
export const EFFECT_KINDS: readonly EffectKind[] = [...DISCONNECT_EFFECTS, ...CONNECT_EFFECTS];

export type EffectStatus = 'PENDING' | 'DONE' | 'FAILED';

/** Why a session ended: silence, deletion, or a GOODBYE from the robot (planned, not a failure). */
export type DisconnectReason = 'MISSED_HEARTBEATS' | 'DELETED' | 'PLANNED' | 'MAINTENANCE';

/** The effects one transition wrote for one session. */
export interface SessionEffects {
  readonly sessionId: string;
  readonly deviceId: string;
  readonly effects: readonly EffectKind[];
  /** Not to run before this time (epoch ms): the connect effects of a flapping device wait. */
  readonly notBefore?: number;
}

/**
 * A BullMQ job id for one effect of one session: deterministic, so a duplicate enqueue is a no-op,
 * and free of ':' (BullMQ reserves it) and never all digits.
 */
export function effectJobId(kind: EffectKind, sessionId: string): string {
  return `${kind}-${sessionId}`;
}
