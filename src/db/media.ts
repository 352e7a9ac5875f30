import type { Track } from '../domain/device';
import type { OutgoingEvent } from '../domain/events';
import type { Queryable } from './knex';
import { insertEventsFrom } from './outbox';

export type RecordingState = 'STARTING' | 'STARTED' | 'STOPPED' | 'FAILED';

export interface Recording {
  readonly id: string;
  readonly deviceId: string;
  readonly sessionId: string | null;
  readonly track: string;
  readonly uri: string;
  readonly policy: 'AUTOMATIC' | 'MANUAL';
  readonly state: RecordingState;
  readonly tgdmId: string | null;
  readonly error: string | null;
  readonly createdAt: Date;
  readonly stoppedAt: Date | null;
}

interface RecordingRow {
  id: string;
  device_id: string;
  session_id: string | null;
  track: string;
  uri: string;
  policy: 'AUTOMATIC' | 'MANUAL';
  state: RecordingState;
  tgdm_id: string | null;
  error: string | null;
  created_at: Date;
  stopped_at: Date | null;
}

const toRecording = (r: RecordingRow): Recording => ({
  id: r.id,
  deviceId: r.device_id,
  sessionId: r.session_id,
  track: r.track,
  uri: r.uri,
  policy: r.policy,
  state: r.state,
  tgdmId: r.tgdm_id,
  error: r.error,
  createdAt: r.created_at,
  stoppedAt: r.stopped_at,
});

/**
 * What a session's automatic recordings start from, in one read: whether the session ended, and the
 * device's Tracks (undefined when there is no such device).
 */
export async function recordingGrounds(
  q: Queryable,
  sessionId: string,
  deviceId: string,
): Promise<{ sessionEnded: boolean; device?: { tracks: Track[]; publicChannel: string } }> {
  const { rows } = await q.raw<{
    rows: { ended: boolean; tracks: Track[] | null; public_channel: string }[];
  }>(
    `SELECT s.ended_at IS NOT NULL AS ended, d.tracks, d.public_channel
       FROM (VALUES (1)) AS one (x)
       LEFT JOIN connection_sessions s ON s.id = ?
       LEFT JOIN devices d ON d.id = ?`,
    [sessionId, deviceId],
  );
  const r = rows[0]!;
  return {
    sessionEnded: r.ended,
    ...(r.tracks && { device: { tracks: r.tracks, publicChannel: r.public_channel } }),
  };
}

/**
 * Inserts recordings in one statement; answers those it inserted (an automatic one already present
 * for its (session, track) is left as it is, and not answered).
 */
export async function insertRecordings(
  q: Queryable,
  rows: readonly (Omit<Recording, 'createdAt' | 'stoppedAt' | 'error' | 'tgdmId'> & { tgdmId?: string })[],
): Promise<Recording[]> {
  if (rows.length === 0) return [];
  const inserted = await q('recordings')
    .insert(
      rows.map((r) => ({
        id: r.id,
        device_id: r.deviceId,
        session_id: r.sessionId,
        track: r.track,
        uri: r.uri,
        policy: r.policy,
        state: r.state,
        tgdm_id: r.tgdmId ?? null,
      })),
    )
    .onConflict(q.raw('(session_id, track) WHERE session_id IS NOT NULL'))
    .ignore()
    .returning<RecordingRow[]>('*');
  return inserted.map(toRecording);
}

export async function recordingsOfSession(q: Queryable, sessionId: string): Promise<Recording[]> {
  return (
    await q('recordings').where({ session_id: sessionId }).orderBy('track').select<RecordingRow[]>('*')
  ).map(toRecording);
}

export async function findRecording(q: Queryable, id: string): Promise<Recording | undefined> {
  const row = await q('recordings').where({ id }).first<RecordingRow | undefined>();
  return row && toRecording(row);
}

export async function listDeviceRecordings(
  q: Queryable,
  deviceId: string,
  limit: number,
): Promise<Recording[]> {
  const rows = await q('recordings')
    .where({ device_id: deviceId })
    .orderBy('created_at', 'desc')
    .limit(limit)
    .select<RecordingRow[]>('*');
  return rows.map(toRecording);
}

/** Compare-and-set of a recording's state; returns the row when it changed. */
export async function setRecordingState(
  q: Queryable,
  id: string,
  from: readonly RecordingState[],
  to: RecordingState,
  extra: { tgdmId?: string; error?: string } = {},
): Promise<Recording | undefined> {
  const [row] = await stateChange(q, id, from, to, extra);
  return row && toRecording(row);
}

/** The update of a recording's state, answering the row as changed (none when it was not in `from`). */
const stateChange = (
  q: Queryable,
  id: string,
  from: readonly RecordingState[],
  to: RecordingState,
  extra: { tgdmId?: string; error?: string },
) =>
  q('recordings')
    .where({ id })
    .whereIn('state', from as RecordingState[])
    .update({
      state: to,
      updated_at: q.fn.now(),
      ...(to === 'STOPPED' ? { stopped_at: q.fn.now() } : {}),
      ...(extra.tgdmId !== undefined ? { tgdm_id: extra.tgdmId } : {}),
      ...(extra.error !== undefined ? { error: extra.error.slice(0, 1000) } : {}),
    })
    .returning<RecordingRow[]>('*');

/**
 * `setRecordingState` with its event, in one statement: the event is written only when the
 * recording changed here. The recording, or undefined when it was not in `from`.
 */
export async function setRecordingStateWithEvent(
  q: Queryable,
  id: string,
  change: { from: readonly RecordingState[]; to: RecordingState; tgdmId?: string },
  event: OutgoingEvent,
): Promise<Recording | undefined> {
  const events = insertEventsFrom('(SELECT ?::jsonb FROM changed) AS c(e)');
  const [row] = await q
    .with('changed', stateChange(q, id, change.from, change.to, change))
    .with('events', q.raw(events, [JSON.stringify(event)]))
    .select<RecordingRow[]>('*')
    .from('changed');
  return row && toRecording(row);
}

export type StreamState = 'ACTIVE' | 'STOPPED' | 'FAILED';

export interface AnalysisStream {
  readonly id: string;
  readonly deviceId: string;
  readonly track: string;
  readonly pipeline: string;
  readonly inputUri: string;
  readonly outputUri: string | null;
  readonly mantisId: string | null;
  readonly state: StreamState;
  readonly error: string | null;
  readonly createdAt: Date;
  readonly stoppedAt: Date | null;
}

interface StreamRow {
  id: string;
  device_id: string;
  track: string;
  pipeline: string;
  input_uri: string;
  output_uri: string | null;
  mantis_id: string | null;
  state: StreamState;
  error: string | null;
  created_at: Date;
  stopped_at: Date | null;
}

const toStream = (r: StreamRow): AnalysisStream => ({
  id: r.id,
  deviceId: r.device_id,
  track: r.track,
  pipeline: r.pipeline,
  inputUri: r.input_uri,
  outputUri: r.output_uri,
  mantisId: r.mantis_id,
  state: r.state,
  error: r.error,
  createdAt: r.created_at,
  stoppedAt: r.stopped_at,
});

export async function insertStream(
  q: Queryable,
  s: Pick<
    AnalysisStream,
    'id' | 'deviceId' | 'track' | 'pipeline' | 'inputUri' | 'outputUri' | 'mantisId' | 'state'
  >,
): Promise<AnalysisStream> {
  const [row] = await q('analysis_streams')
    .insert({
      id: s.id,
      device_id: s.deviceId,
      track: s.track,
      pipeline: s.pipeline,
      input_uri: s.inputUri,
      output_uri: s.outputUri,
      mantis_id: s.mantisId,
      state: s.state,
    })
    .returning<StreamRow[]>('*');
  return toStream(row!);
}

/** The device's ACTIVE streams started no later than `before` (a newer session's streams are not touched). */
export async function activeStreamsBefore(
  q: Queryable,
  deviceId: string,
  before: Date,
): Promise<AnalysisStream[]> {
  const rows = await q('analysis_streams')
    .where({ device_id: deviceId, state: 'ACTIVE' })
    .where('created_at', '<=', before)
    .select<StreamRow[]>('*');
  return rows.map(toStream);
}

export async function findStream(q: Queryable, id: string): Promise<AnalysisStream | undefined> {
  const row = await q('analysis_streams').where({ id }).first<StreamRow | undefined>();
  return row && toStream(row);
}

export async function listDeviceStreams(
  q: Queryable,
  deviceId: string,
  limit: number,
): Promise<AnalysisStream[]> {
  const rows = await q('analysis_streams')
    .where({ device_id: deviceId })
    .orderBy('created_at', 'desc')
    .limit(limit)
    .select<StreamRow[]>('*');
  return rows.map(toStream);
}

export async function setStreamState(
  q: Queryable,
  id: string,
  from: readonly StreamState[],
  to: StreamState,
  error?: string,
): Promise<AnalysisStream | undefined> {
  const [row] = await q('analysis_streams')
    .where({ id })
    .whereIn('state', from as StreamState[])
    .update({
      state: to,
      updated_at: q.fn.now(),
      ...(to === 'STOPPED' ? { stopped_at: q.fn.now() } : {}),
      ...(error !== undefined ? { error: error.slice(0, 1000) } : {}),
    })
    .returning<StreamRow[]>('*');
  return row && toStream(row);
}
