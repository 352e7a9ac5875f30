import type { GatewayRecords } from '../operations/gateway-records';
import { restingAt } from '../domain/policy';
import type { Logger } from '../logger';
import { healthcheck, type HealthcheckMessage } from '../moth/codec';
import type { Rounds } from '../redis/rounds';
import type { DeviceBuses } from './device-buses';

export interface RoundOpenerDeps {
  readonly id: string;
  readonly records: Pick<GatewayRecords, 'intervalMultiples'>;
  readonly rounds: Rounds;
  readonly buses: Pick<DeviceBuses, 'held' | 'sendToAll'>;
  /** Spread of one round's HEALTHCHECKs over the buses. */
  readonly spreadMs: number;
  readonly logger: Logger;
  /** Recording the opening failed: this gateway's shards cannot count the round as heard. */
  readonly broke: () => void;
  /** A robot's own bus was handed this round's HEALTHCHECK now (its link latency runs from here). */
  readonly asked?: (deviceId: string, round: number, at: number) => void;
  /**
   * Whether a robot answered the last round it was asked in. Those that did not (arriving, coming
   * back, or silent) are asked first: one waiting to connect has no round to spare, an answering one
   * has its misses' worth. A fleet arriving at once meets a round's HEALTHCHECKs taking seconds to
   * go out on a loaded machine, and the last robots to arrive would wait the longest.
   */
  readonly answeredLast?: (deviceId: string) => boolean;
}

/**
 * Opens each round on the shards this gateway holds: heartbeats count for it from then on, and
 * HEALTHCHECK goes out on every bus but those of robots checked every k-th round and not asked in
 * this one. Keeps the nonces of the last rounds (a proof that waited for its key may be of the one
 * before).
 */
export function createRoundOpener(deps: RoundOpenerDeps) {
  const { rounds, logger: log } = deps;
  let openRound = 0;
  let stopped = false;
  const nonces = new Map<number, string>();
  // Robots checked every k-th round (id -> k), as last read; kept when a read fails.
  let multiples = new Map<string, number>();
  const refreshMultiples = () =>
    deps.records.intervalMultiples().then(
      (m) => void (multiples = m),
      (err: Error) =>
        log.warn({ err: err.message }, 'could not read which robots are checked every k-th round'),
    );

  async function open(message: HealthcheckMessage): Promise<void> {
    if (message.round <= openRound || stopped) return;
    if (message.nonce !== undefined) nonces.set(message.round, message.nonce);
    for (const r of nonces.keys()) if (r < message.round - 2) nonces.delete(r);
    openRound = message.round;
    try {
      await rounds.markOpened(message.round, deps.id, deps.buses.held(), Date.now());
    } catch (err) {
      deps.broke();
      log.warn({ round: message.round, err: (err as Error).message }, 'could not record the round opening');
    }
    // Which robots rest is read from Postgres after each round, for the next: a HEALTHCHECK never
    // waits for Postgres (a held one would cost the robot its answer), and a policy change applies
    // from the round after the read.
    const resting = new Set(restingAt(message.round, multiples));
    const asked = deps.asked ?? (() => {});
    const answeredLast = deps.answeredLast ?? (() => true);
    const { failed } = await deps.buses.sendToAll(message, deps.spreadMs, {
      skipping: resting,
      first: (id) => !answeredLast(id),
      handed: (id, at) => asked(id, message.round, at),
    });
    void refreshMultiples();
    if (failed > 0) log.warn({ round: message.round, failed }, 'HEALTHCHECK not sent on some buses');
  }

  return {
    open,
    /** The round heartbeats count for now. */
    openRound: () => openRound,
    nonce: (round: number) => nonces.get(round),
    /** Starts from the current round (heartbeats before the next one count for it). */
    async start(): Promise<void> {
      await refreshMultiples();
      openRound = await rounds.current();
    },
    /** A round missed on pub/sub (Redis reconnecting) is opened if it is still young. */
    async catchUp(): Promise<void> {
      const current = await rounds.current();
      if (current <= openRound) return;
      const meta = await rounds.meta(current);
      if (!meta || Date.now() - meta.issuedAt > (meta.intervalSeconds * 1000) / 2) {
        openRound = Math.max(openRound, current);
        return;
      }
      await open(healthcheck(current, meta.intervalSeconds, new Date(meta.issuedAt), meta.nonce));
    },
    stop: () => void (stopped = true),
  };
}

export type RoundOpener = ReturnType<typeof createRoundOpener>;
