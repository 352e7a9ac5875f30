import { randomUUID } from 'node:crypto';
import { trackEndpoint, type Track } from '../domain/device';
import { validationFailed } from '../domain/errors';
import { recordingEvent } from '../domain/events';
import { findLiveDevice, type Device } from '../db/devices';
import type { Db } from '../db/knex';
import {
  insertRecordings,
  recordingGrounds,
  recordingsOfSession,
  setRecordingState,
  setRecordingStateWithEvent,
  type Recording,
} from '../db/media';
import type { Tgdm } from '../integrations/tgdm';
import { deviceNotFound } from './device-errors';
import { upstream } from './media-errors';

export interface StartRecordingDeps {
  readonly db: Db;
  readonly tgdm: Tgdm;
  /** Base URL of Moth as TGDM reaches it: the recording URI is this plus the Track's sub path. */
  readonly mothUrl: string;
  /** Which Tracks are recorded automatically (default: VIDEO). */
  readonly recorded?: (t: Track) => boolean;
}

/** Where TGDM subscribes to a Track of the device. */
export function trackUri(
  mothUrl: string,
  d: Pick<Device, 'publicChannel' | 'tracks'>,
  track: string,
): string {
  if (!d.tracks.some((t) => t.name === track)) {
    throw validationFailed([{ field: 'track', message: `the device has no track "${track}"` }]);
  }
  return new URL(trackEndpoint(d.publicChannel, track, 'sub'), mothUrl).toString();
}

type NewRecording = Pick<Recording, 'id' | 'deviceId' | 'sessionId' | 'track' | 'uri' | 'policy' | 'state'>;

/** Asks TGDM to record, the row's id as the idempotency key; answers TGDM's id of the recording. */
const askTgdmToRecord = async (deps: StartRecordingDeps, r: NewRecording) =>
  (
    await deps.tgdm.startRecording({
      uri: r.uri,
      deviceId: r.deviceId,
      track: r.track,
      policy: r.policy,
      key: r.id,
    })
  ).id;

/** STARTING -> STARTED with RECORDING_STARTED, in one statement; undefined when no longer STARTING. */
const markStarted = (deps: StartRecordingDeps, r: NewRecording, tgdmId: string) =>
  setRecordingStateWithEvent(
    deps.db,
    r.id,
    { from: ['STARTING'], to: 'STARTED', tgdmId },
    recordingEvent('RECORDING_STARTED', r),
  );

/**
 * The rows of a session's automatic recordings (STARTING), one per recorded Track, unless it has
 * them already; answers the session's recordings, none when the session is over and none was started.
 */
async function writeSessionRecordings(
  deps: StartRecordingDeps,
  sessionId: string,
  deviceId: string,
  recorded: (t: Track) => boolean,
): Promise<NewRecording[]> {
  // No transaction is needed: the session's stop waits for this effect to end (stop-recording.ts).
  const { sessionEnded, device } = await recordingGrounds(deps.db, sessionId, deviceId);
  const existing: NewRecording[] = await recordingsOfSession(deps.db, sessionId);
  // The session is already over: nothing to record, nothing was started.
  if (existing.length === 0 && (sessionEnded || !device)) return [];
  const missing = (device ? device.tracks.filter(recorded) : []).filter(
    (t) => !existing.some((r) => r.track === t.name),
  );
  const rows = missing.map((track) => ({
    id: randomUUID(),
    deviceId,
    sessionId,
    track: track.name,
    uri: trackUri(deps.mothUrl, device!, track.name),
    policy: 'AUTOMATIC' as const,
    state: 'STARTING' as const,
  }));
  const inserted = await insertRecordings(deps.db, rows);
  // A run beside this one wrote some first: theirs are the session's (their ids are TGDM's keys).
  if (inserted.length < rows.length) return recordingsOfSession(deps.db, sessionId);
  return [...existing, ...inserted];
}

/**
 * Starting a TGDM recording. The row is written (STARTING) before TGDM is asked, with its id as the
 * idempotency key, so a crash between TGDM's answer and our commit cannot record twice; the
 * STARTING -> STARTED change and RECORDING_STARTED commit together.
 */
export function createStartRecording(deps: StartRecordingDeps) {
  const recorded = deps.recorded ?? ((t: Track) => t.type === 'VIDEO');

  const askTgdm = (r: NewRecording) => askTgdmToRecord(deps, r);

  return {
    /** An operator's recording of one Track of a live device; TGDM refusing it is a 502 and the row is FAILED. */
    async manual(deviceId: string, track: string): Promise<Recording> {
      const device = await findLiveDevice(deps.db, deviceId);
      if (!device) throw deviceNotFound();
      const id = randomUUID();
      const row: NewRecording = {
        id,
        deviceId: device.id,
        sessionId: null,
        track,
        uri: trackUri(deps.mothUrl, device, track),
        policy: 'MANUAL',
        state: 'STARTING',
      };
      await insertRecordings(deps.db, [row]);
      let tgdmId: string;
      try {
        tgdmId = await askTgdm(row);
      } catch (err) {
        await setRecordingState(deps.db, id, ['STARTING'], 'FAILED', { error: (err as Error).message });
        throw upstream('TGDM', err);
      }
      return (await markStarted(deps, row, tgdmId))!;
    },

    /**
     * The automatic recordings of a session (the connect effect): one per recorded Track, none when
     * the session is already over. Idempotent: a re-run asks TGDM only for rows still STARTING.
     */
    async forSession(sessionId: string, deviceId: string): Promise<void> {
      for (const r of await writeSessionRecordings(deps, sessionId, deviceId, recorded)) {
        if (r.state === 'STARTING') await markStarted(deps, r, await askTgdm(r));
      }
    },

    /** After the effect failed for good: its half-started recordings are FAILED. */
    async failSession(sessionId: string, error: string): Promise<void> {
      for (const r of await recordingsOfSession(deps.db, sessionId)) {
        if (r.state === 'STARTING') await setRecordingState(deps.db, r.id, ['STARTING'], 'FAILED', { error });
      }
    },
  };
}

export type StartRecording = ReturnType<typeof createStartRecording>;
