import type { SessionEffects } from '../domain/effects';
import type { Db } from '../db/knex';
import { tokenHash } from '../domain/credentials';
import { expectedProof, proofMatches } from '../domain/proofs';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import { createDisconnectDevices } from '../operations/disconnect-devices';
import type { GatewayRecords } from '../operations/gateway-records';
import { setBounded } from './bounded-map';
import type { Goodbye } from './heartbeat-ingest';

export interface GoodbyeDeps {
  readonly db: Db;
  readonly records: Pick<GatewayRecords, 'devicesOfTokens' | 'tokensOfDevices'>;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly openRound: () => number;
  readonly roundNonce: (round: number) => string | undefined;
  /** Takes the device out of the connected index and out of the round's memory. */
  readonly forget: (deviceId: string) => Promise<void>;
  /** Runs what a disconnect starts (its effects, the outbox). */
  readonly disconnected: (ended: readonly SessionEffects[]) => Promise<void>;
}

/**
 * A robot leaving on purpose (`GOODBYE`): checked as strictly as a heartbeat (its own token on its
 * own bus, or a goodbye proof for the open round), then disconnected at once with reason PLANNED;
 * its disconnect effects run as for any other. Off the heartbeat path: a goodbye is rare.
 */
export function createGoodbyes(deps: GoodbyeDeps) {
  const refuse = (result: string) => {
    deps.metrics.heartbeats.inc({ result });
    return undefined;
  };

  /** Goodbye proofs taken (device:round): each counts once. */
  const taken = new Map<string, true>();

  /** Whose goodbye it is, and the round it was said in; undefined when refused. */
  async function deviceOf(
    message: Goodbye,
    busDevice: string | undefined,
  ): Promise<{ deviceId: string; round: number } | undefined> {
    if ('token' in message) {
      const [found] = await deps.records.devicesOfTokens([tokenHash(message.token)]);
      if (!found) return refuse('unknown_token');
      if (busDevice !== undefined && found.deviceId !== busDevice) return refuse('misplaced');
      // A device that speaks v2 says goodbye with a proof too.
      if (found.proofsOnly) return refuse('downgrade');
      return { deviceId: found.deviceId, round: deps.openRound() };
    }
    const { deviceId, round, proof } = message.proof;
    if (busDevice !== undefined && deviceId !== busDevice) return refuse('misplaced');
    // The open round or the one before: a robot that says goodbye as a new round opens is not
    // refused for it (and left to be counted a failure after its misses). Replayed, it is refused
    // here, and (on another gateway, after a handover) ends no session begun after its round.
    const open = deps.openRound();
    const nonce = round === open || round === open - 1 ? deps.roundNonce(round) : undefined;
    const [key] = await deps.records.tokensOfDevices([deviceId]);
    if (
      nonce === undefined ||
      !key ||
      !proofMatches(proof, expectedProof(key.tokenHash, round, nonce, 'goodbye'))
    )
      return refuse('bad_proof');
    const said = `${deviceId}:${round}`;
    if (taken.has(said)) return refuse('replayed');
    setBounded(taken, 10_000, said, true);
    return { deviceId, round };
  }

  const disconnectDevices = createDisconnectDevices(deps);
  return async function goodbye(message: Goodbye, busDevice: string | undefined): Promise<void> {
    try {
      const said = await deviceOf(message, busDevice);
      if (said === undefined) return;
      const { deviceId, round } = said;
      // Only a session begun by the round it was said in: never one the robot began after leaving.
      const ended = await disconnectDevices(
        deps.db,
        [{ deviceId, beforeRound: round + 1, missedRounds: 0, lastRoundHeard: null, lastHeartbeatAt: null }],
        'PLANNED',
      );
      await deps.forget(deviceId);
      if (ended.length > 0) await deps.disconnected(ended);
    } catch (err) {
      // Not lost for good: a robot that said goodbye and went silent is disconnected by its misses.
      deps.logger.warn({ err: (err as Error).message }, 'could not act on a GOODBYE');
    }
  };
}
