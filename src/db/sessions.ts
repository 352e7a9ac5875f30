import type { Queryable } from './knex';

export interface SessionView {
  readonly id: string;
  readonly startedAt: Date;
  readonly startedRound: number;
  readonly endedAt: Date | null;
  readonly endReason: string | null;
  readonly roundsMissed: number | null;
  readonly lastRoundHeard: number | null;
}

/** A device's connection history, newest first. */
export async function listSessions(q: Queryable, deviceId: string, limit: number): Promise<SessionView[]> {
  const rows = (await q('connection_sessions')
    .select(
      'id',
      'started_at',
      'started_round',
      'ended_at',
      'end_reason',
      'rounds_missed',
      'last_round_heard',
    )
    .where({ device_id: deviceId })
    .orderBy('started_at', 'desc')
    .limit(limit)) as {
    id: string;
    started_at: Date;
    started_round: string;
    ended_at: Date | null;
    end_reason: string | null;
    rounds_missed: number | null;
    last_round_heard: string | null;
  }[];
  return rows.map((r) => ({
    id: r.id,
    startedAt: r.started_at,
    startedRound: Number(r.started_round),
    endedAt: r.ended_at,
    endReason: r.end_reason,
    roundsMissed: r.rounds_missed,
    lastRoundHeard: r.last_round_heard === null ? null : Number(r.last_round_heard),
  }));
}
