import { createHash } from 'node:crypto';
import { clientEvent } from '../domain/events';
import { holdsRound, isMassSilence } from '../domain/rounds';
import type { SettingValues } from '../domain/settings';
import { devicesInMaintenance } from '../db/devices';
import type { Db } from '../db/knex';
import { appendEvents } from '../db/outbox';
import { restingIn } from '../db/policies';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import type { Liveness } from '../redis/liveness';
import type { Rounds } from '../redis/rounds';

/** A UUID-shaped id that is the same for every attempt at the same round. */
function roundEventId(round: number): string {
  const h = createHash('sha256').update(`round-held-${round}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export interface MassSilenceDeps {
  readonly db: Db;
  readonly liveness: Liveness;
  readonly rounds: Rounds;
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/**
 * The mass-silence brake (src/domain/rounds.ts): holds round n, with HEALTHCHECK_ROUND_HELD, or lets
 * its misses count. Counts only the shards the round was valid for (elsewhere nobody could have been
 * heard). Devices in maintenance, and those checked every k-th round and not asked in this one, are
 * left out: their silence says nothing of ours. Fewer silent than the minimum, with or without them,
 * is no mass silence: a quiet round does not ask Postgres which they are.
 */
export function createHoldOnMassSilence(deps: MassSilenceDeps) {
  return async (n: number, validShards: readonly number[], settings: SettingValues): Promise<boolean> => {
    let { connected, missed } = await deps.liveness.silenceOf(n, validShards);
    if (missed >= settings['device.massSilenceMinDevices']) {
      const expected = [...(await devicesInMaintenance(deps.db)), ...(await restingIn(deps.db, n))];
      ({ connected, missed } = await deps.liveness.silenceOf(n, validShards, expected));
    }
    const rule = {
      ratio: settings['device.massSilenceRatio'],
      minDevices: settings['device.massSilenceMinDevices'],
      maxHeldRounds: settings['device.massSilenceMaxHeldRounds'],
    };
    if (!isMassSilence({ missed, connected }, rule)) {
      await deps.rounds.endHeldStreak();
      return false;
    }
    const streak = await deps.rounds.heldStreak();
    if (!holdsRound(streak, rule)) {
      deps.logger.warn(
        { round: n, missed, connected, streak },
        'mass silence persists past the brake: misses count',
      );
      return false;
    }
    // The event first, under an id derived from the round, so a re-run cannot publish it twice.
    const held = clientEvent('HEALTHCHECK_ROUND_HELD', null, {
      round: n,
      missed,
      connected,
      heldInARow: streak + 1,
    });
    await appendEvents(deps.db, [{ channel: 'client', event: { ...held.event, eventId: roundEventId(n) } }]);
    await deps.rounds.hold(n);
    deps.metrics.rounds.inc({ outcome: 'held' });
    deps.logger.warn({ round: n, missed, connected, heldInARow: streak + 1 }, 'mass silence: round held');
    return true;
  };
}
