import { readAudit } from '../db/audit';
import { deviceExisted, findLiveDevice, listDevices, type DevicePageQuery } from '../db/devices';
import { effectsOfSessions } from '../db/effects';
import type { Db } from '../db/knex';
import { connectedOverTime, detectionDelays, fleetPage, fleetSummary, type FleetFilter } from '../db/fleet';
import { bucketsOf } from '../db/links';
import { listDeviceRecordings, listDeviceStreams } from '../db/media';
import { lastNumber, readStream } from '../db/outbox';
import { findGroup, listGroups } from '../db/policies';
import { listSessions } from '../db/sessions';
import { publishedKeys } from '../db/signing-keys';
import { findTask, listDeviceTasks } from '../db/tasks';
import { historiesFor } from '../db/uptime';
import { deliveriesOf, findWebhook, pendingDeliveries, listWebhooks } from '../db/webhooks';

export type { Device, Maintenance } from '../db/devices';
export type { EffectRow } from '../db/effects';
export type { FleetCursor, FleetFilter, FleetRow, FleetSession } from '../db/fleet';
export type { AnalysisStream, Recording } from '../db/media';
export type { DeviceGroup } from '../db/policies';
export type { SessionView } from '../db/sessions';
export type { Task } from '../db/tasks';
export type { DeviceHistory } from '../db/uptime';
export type { Delivery } from '../db/webhooks';

/**
 * What the HTTP API reads: each a query with no side effect, over the shared pool. A webhook's
 * backlog counts at most `webhookMaxBacklog` events waiting in the stream (what its pump keeps).
 */
export function createQueries(db: Db, webhookMaxBacklog: number) {
  return {
    liveDevice: (id: string) => findLiveDevice(db, id),
    /** The fleet page's header (counts, groups) and a page of its devices with their last sessions. */
    fleetSummary: () => fleetSummary(db),
    fleetPage: (filter: FleetFilter, page: Parameters<typeof fleetPage>[2]) => fleetPage(db, filter, page),
    /** The number of a stream's last event (where a live view starts). */
    lastEventNumber: (stream: string) => lastNumber(db, stream),
    /** The fleet's history for the page's charts. */
    connectedOverTime: (from: Date, to: Date, points: number) => connectedOverTime(db, from, to, points),
    detectionDelays: (since: Date, buckets: readonly number[]) => detectionDelays(db, since, buckets),
    deviceExisted: (id: string) => deviceExisted(db, id),
    devicePage: (p: DevicePageQuery) => listDevices(db, p),
    /** A device's sessions, newest first, each with its effects. */
    async sessionsWithEffects(deviceId: string, limit: number) {
      const sessions = await listSessions(db, deviceId, limit);
      const effects = await effectsOfSessions(
        db,
        sessions.map((s) => s.id),
      );
      return sessions.map((s) => ({ ...s, effects: effects.filter((e) => e.sessionId === s.id) }));
    },
    recordings: (deviceId: string, limit: number) => listDeviceRecordings(db, deviceId, limit),
    analysisStreams: (deviceId: string, limit: number) => listDeviceStreams(db, deviceId, limit),
    task: (id: string) => findTask(db, id),
    tasks: (deviceId: string, limit: number) => listDeviceTasks(db, deviceId, limit),
    group: (name: string) => findGroup(db, name),
    groups: () => listGroups(db),
    webhook: (id: string) => findWebhook(db, id),
    webhookBacklog: (id: string) => pendingDeliveries(db, id, webhookMaxBacklog),
    webhooks: () => listWebhooks(db),
    deliveries: (webhookId: string, limit: number) => deliveriesOf(db, webhookId, limit),
    eventStream: (stream: string, after: number, limit: number) => readStream(db, stream, after, limit),
    signingKeys: () => publishedKeys(db),
    audit: (page: Parameters<typeof readAudit>[1]) => readAudit(db, page),
    /** A device's link chart buckets since `since`, oldest first. */
    linkBuckets: (deviceId: string, since: Date) => bucketsOf(db, deviceId, since),
    histories: (from: Date, to: Date, scope: Parameters<typeof historiesFor>[3]) =>
      historiesFor(db, from, to, scope),
  };
}

export type Queries = ReturnType<typeof createQueries>;
