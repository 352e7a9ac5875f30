import type { Decoded } from './proof-keys';

/**
 * What the ingest remembers of the round open now, per device: the credential Redis accepted from
 * it (its later heartbeats of the round are counted in memory: they could not change anything), its
 * heartbeat on its way to Redis (repeats wait for that answer), and its last frame (a robot that
 * repeats itself costs a comparison, not a decode and a hash). It holds one round: turning to
 * another forgets everything, so even a lost revocation lets a revoked token record nothing past
 * the round (the next round's first heartbeat meets the tombstone in Redis).
 */
export function createRoundMemory<Pending extends { readonly deviceId: string | undefined }>() {
  let round = 0;
  /** Device -> the credential Redis accepted from it in `round`. */
  let recorded = new Map<string, string>();
  let pending = new Map<string, Pending>();
  let frames = new Map<string, Decoded>();
  const forget = () => {
    recorded = new Map();
    pending = new Map();
    frames = new Map();
  };

  return {
    /** The round remembered. */
    round: () => round,
    /** The round open now is `n`: a memory of another round is forgotten. */
    turnTo(n: number): void {
      if (n === round) return;
      forget();
      round = n;
    },
    recorded: (deviceId: string) => recorded.get(deviceId),
    /** Redis accepted `credential` from the device in `heardRound` (kept only for the round remembered). */
    record(deviceId: string, heardRound: number, credential: string): void {
      if (heardRound === round) recorded.set(deviceId, credential);
    },
    pending: (deviceId: string) => pending.get(deviceId),
    hold(deviceId: string, heartbeat: Pending): void {
      pending.set(deviceId, heartbeat);
    },
    /** These heartbeats were written (or lost): later ones of their devices are not held for them. */
    settle(heartbeats: readonly Pending[]): void {
      for (const h of heartbeats)
        if (h.deviceId !== undefined && pending.get(h.deviceId) === h) pending.delete(h.deviceId);
    },
    lastFrame: (deviceId: string) => frames.get(deviceId),
    /** Keeps a copy of the frame: the one given is a view of a whole read, which it would keep. */
    keepFrame(deviceId: string, decoded: Decoded): void {
      frames.set(deviceId, { ...decoded, frame: Buffer.from(decoded.frame) });
    },
    /** Its token was revoked: its next heartbeats go to Redis on their own. */
    revoked(deviceId: string): void {
      recorded.delete(deviceId);
      pending.delete(deviceId);
    },
    /** It said goodbye: nothing of this round is remembered of it. */
    forgetDevice(deviceId: string): void {
      recorded.delete(deviceId);
      pending.delete(deviceId);
      frames.delete(deviceId);
    },
    forget,
  };
}

export type RoundMemory<Pending extends { readonly deviceId: string | undefined }> = ReturnType<
  typeof createRoundMemory<Pending>
>;
