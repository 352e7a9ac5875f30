import type { Queryable } from '../db/knex';
import { disconnectDevices, type DisconnectCandidate } from '../db/transitions';
import type { DisconnectReason, EffectKind, SessionEffects } from '../domain/effects';
import type { Metrics } from '../metrics';

/**
 * CONNECTED -> DISCONNECTED for many devices, each a compare-and-set that ends its session with
 * DEVICE_DISCONNECTED and its effect rows (src/db/transitions.ts), counted by reason: the one
 * disconnect of the evaluation (missed heartbeats, maintenance), of goodbyes and of deletes. `q` is
 * the caller's transaction when the disconnect is part of a larger change (a delete).
 */
export function createDisconnectDevices(deps: { metrics: Pick<Metrics, 'transitions' | 'disconnects'> }) {
  return async (
    q: Queryable,
    candidates: readonly DisconnectCandidate[],
    reason: DisconnectReason,
    effectKinds?: readonly EffectKind[],
  ): Promise<SessionEffects[]> => {
    const ended = await disconnectDevices(q, candidates, reason, effectKinds);
    if (ended.length > 0) {
      deps.metrics.transitions.inc({ to: 'DISCONNECTED' }, ended.length);
      deps.metrics.disconnects.inc({ reason }, ended.length);
    }
    return ended;
  };
}

export type DisconnectDevices = ReturnType<typeof createDisconnectDevices>;
