import type { Queryable } from './knex';

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

/** Inserts a recording; an automatic one already present for (session, track) is left as it is. */
export async function insertRecording(
  q: Queryable,
  r: Omit<Recording, 'createdAt' | 'stoppedAt' | 'error' | 'tgdmId'> & { tgdmId?: string },
): Promise<void> {
  await q('recordings')
    .insert({
      id: r.id,
      device_id: r.deviceId,
      session_id: r.sessionId,
      track: r.track,
      uri: r.uri,
      policy: r.policy,
      state: r.state,
      tgdm_id: r.tgdmId ?? null,
    })
    .onConflict(q.raw('(session_id, track) WHERE session_id IS NOT NULL'))
    .ignore();
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
  const [row] = await q('recordings')
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
