import { z } from 'zod';
import { DEVICE_STATUSES, TRACK_TYPES } from '../domain/device';
import { EVENT_TYPES } from '../domain/events';
import { TASK_STATUSES } from '../domain/task';

// The shapes of our responses. The OpenAPI document is generated from these (and from the request
// schemas that validate input), and the contract tests parse real responses with them.

const isoDate = z.iso.datetime({ offset: true });
const maintenanceOut = z.object({
  until: isoDate,
  reason: z.string(),
  stopsRecordings: z.boolean(),
  /** Present when the window is the device's group's. */
  group: z.string().optional(),
});
export const maintenanceResponse = z.object({ id: z.uuid(), maintenance: maintenanceOut });
const nullableDate = isoDate.nullable();

export const errorResponse = z.object({
  error: z.object({
    code: z.string().regex(/^[A-Z][A-Z0-9_]*$/),
    message: z.string(),
    details: z.unknown().optional(),
  }),
});

const trackOut = z.object({
  name: z.string(),
  type: z.enum(TRACK_TYPES),
  endpoint: z.string().startsWith('/pang/ws/'),
});

export const registrationResponse = z.object({
  id: z.uuid(),
  name: z.string(),
  token: z.string().min(43),
  status: z.literal('DISCONNECTED'),
  tracks: z.array(trackOut),
  actions: z.array(z.string()),
  createdAt: isoDate,
  channels: z.object({
    moth: z.string().optional(),
    deviceManagement: z.string().startsWith('/pang/ws/meb?'),
  }),
});

/** A robot's link as its health check measures it (null: never measured). */
const linkOut = z.object({
  /** `degraded` once its p95 latency or miss share stayed past its limits for the hold time. */
  state: z.enum(['ok', 'degraded']),
  since: isoDate,
  /** Over its last 60 asked rounds: latency from the HEALTHCHECK sent on its bus to its answer. */
  p50Ms: z.number().nullable(),
  p95Ms: z.number().nullable(),
  maxMs: z.number().nullable(),
  jitterMs: z.number().nullable(),
  /** Rounds it was asked in and did not answer, short of a disconnect, over the rounds asked. */
  missShare: z.number(),
  rounds: z.number().int(),
  measuredAt: isoDate,
});

export const deviceResponse = z.object({
  id: z.uuid(),
  name: z.string(),
  status: z.enum(DEVICE_STATUSES),
  tracks: z.array(trackOut),
  actions: z.array(z.string()),
  createdAt: isoDate,
  connectedAt: nullableDate,
  disconnectedAt: nullableDate,
  lastHeartbeatAt: nullableDate,
  currentSessionId: z.uuid().nullable(),
  /** Still answering on the shared bus of earlier versions (its robot needs reconfiguring). */
  usesSharedBus: z.boolean(),
  /** v2 once it has answered with a proof: from then on its plain-token heartbeats are refused. */
  heartbeatProtocol: z.enum(['v1', 'v2']),
  /** Its current token was heard in a text frame, which Moth replays to later joiners: rotate it. */
  tokenExposed: z.boolean(),
  /** Its open maintenance window (its own, or else its group's), if any. */
  maintenance: maintenanceOut.nullable(),
  /** While it keeps losing and regaining its link: its connect effects wait a hold time. */
  flapping: z.object({ since: isoDate }).nullable(),
  /** While the gateway keeps losing its bus session (3 times in 10 minutes): rounds lost then are excused, a bounded few. */
  busUnstable: z.object({ since: isoDate }).nullable(),
  group: z.string().nullable(),
  link: linkOut.nullable(),
});

const policyValue = z.object({ value: z.number(), source: z.enum(['device', 'group', 'server']) });
/** The health-check policy in force, each value with the level it came from. */
const effectivePolicy = z.object({
  maxConsecutiveMisses: policyValue,
  intervalMultiple: policyValue,
  linkMaxP95Ms: policyValue,
  linkMaxMissShare: policyValue,
});
const policyFields = z.object({
  maxConsecutiveMisses: z.number().int().nullable(),
  intervalMultiple: z.number().int().nullable(),
  linkMaxP95Ms: z.number().int().nullable(),
  linkMaxMissShare: z.number().nullable(),
});

/** One device as itself or the operator sees it: with the path of its own bus. */
export const deviceDetailResponse = deviceResponse.extend({
  channels: z.object({
    moth: z.string().optional(),
    deviceManagement: z.string().startsWith('/pang/ws/meb?'),
  }),
  healthcheck: effectivePolicy,
});

export const devicePatchResponse = z.object({
  id: z.uuid(),
  group: z.string().nullable(),
  healthcheck: effectivePolicy,
});

export const groupResponse = z.object({
  name: z.string(),
  /** The group's own values; null falls to the server setting. */
  healthcheck: policyFields,
  members: z.number().int(),
  maintenance: maintenanceOut.nullable(),
});
export const groupsResponse = z.object({ groups: z.array(groupResponse) });
export const groupMaintenanceResponse = z.object({ name: z.string(), maintenance: maintenanceOut });

export const deviceListResponse = z.object({
  devices: z.array(deviceResponse),
  nextCursor: z.string().nullable(),
});

export const tokenResponse = z.object({ id: z.uuid(), token: z.string().min(43) });
export const tokensResponse = z.object({
  count: z.number().int(),
  rotated: z.array(tokenResponse.extend({ name: z.string() })),
});

export const sessionsResponse = z.object({
  sessions: z.array(
    z.object({
      id: z.uuid(),
      startedAt: isoDate,
      startedRound: z.number().int(),
      endedAt: nullableDate,
      endReason: z.string().nullable(),
      roundsMissed: z.number().int().nullable(),
      lastRoundHeard: z.number().int().nullable(),
      effects: z.array(
        z.object({
          kind: z.string(),
          status: z.enum(['PENDING', 'DONE', 'FAILED']),
          attempts: z.number().int(),
          lastError: z.string().nullable(),
          doneAt: nullableDate,
        }),
      ),
    }),
  ),
});

export const settingsResponse = z.object({
  device: z.object({
    healthcheckIntervalSeconds: z.number().int(),
    healthcheckMaxConsecutiveMisses: z.number().int(),
    massSilenceRatio: z.number(),
    massSilenceMinDevices: z.number().int(),
    massSilenceMaxHeldRounds: z.number().int(),
    flapThreshold: z.number().int(),
    flapWindowSeconds: z.number().int(),
    flapHoldSeconds: z.number().int(),
    linkMaxP95Ms: z.number().int(),
    linkMaxMissShare: z.number(),
    linkDegradedHoldSeconds: z.number().int(),
    maxDevices: z.number().int(),
    secretKeyConfigured: z.boolean(),
  }),
  recording: z.object({ automatic: z.boolean() }),
  webhook: z.object({ maxWebhooks: z.number().int() }),
});

export const taskResponse = z.object({
  id: z.uuid(),
  deviceId: z.uuid(),
  action: z.string(),
  payload: z.record(z.string(), z.unknown()),
  status: z.enum(TASK_STATUSES),
  reason: z.string().nullable(),
  failPoint: z.unknown(),
  createdAt: isoDate,
  updatedAt: isoDate,
  startedAt: nullableDate,
  finishedAt: nullableDate,
});
export const taskListResponse = z.object({ tasks: z.array(taskResponse) });

export const recordingResponse = z.object({
  id: z.uuid(),
  deviceId: z.uuid(),
  sessionId: z.uuid().nullable(),
  track: z.string(),
  uri: z.string(),
  policy: z.enum(['AUTOMATIC', 'MANUAL']),
  state: z.enum(['STARTING', 'STARTED', 'STOPPED', 'FAILED']),
  tgdmId: z.string().nullable(),
  error: z.string().nullable(),
  createdAt: isoDate,
  stoppedAt: nullableDate,
});
export const recordingListResponse = z.object({ recordings: z.array(recordingResponse) });

export const streamResponse = z.object({
  id: z.uuid(),
  deviceId: z.uuid(),
  track: z.string(),
  pipeline: z.string(),
  inputUri: z.string(),
  outputUri: z.string().nullable(),
  mantisId: z.string().nullable(),
  state: z.enum(['ACTIVE', 'STOPPED', 'FAILED']),
  error: z.string().nullable(),
  createdAt: isoDate,
  stoppedAt: nullableDate,
});
export const streamListResponse = z.object({ analysisStreams: z.array(streamResponse) });

const fleetSession = z.object({
  startedAt: isoDate,
  endedAt: nullableDate,
  endReason: z.string().nullable(),
});
export const fleetResponse = z.object({
  generatedAt: isoDate,
  intervalSeconds: z.number().int(),
  lastEventSeq: z.number().int(),
  counts: z.object({
    CONNECTED: z.number().int(),
    DISCONNECTED: z.number().int(),
    flapping: z.number().int(),
    maintenance: z.number().int(),
  }),
  /** Every group a live device is in. */
  groups: z.array(z.string()),
  /** Pass as `after` for the next page; null on the last. */
  nextAfter: z.string().nullable(),
  devices: z.array(
    z.object({
      id: z.uuid(),
      name: z.string(),
      status: z.enum(DEVICE_STATUSES),
      group: z.string().nullable(),
      lastHeartbeatAt: nullableDate,
      sessionStartedAt: nullableDate,
      usesSharedBus: z.boolean(),
      tokenExposed: z.boolean(),
      maintenanceUntil: nullableDate,
      flappingSince: nullableDate,
      busUnstableSince: nullableDate,
      uptimePercent24h: z.number(),
      createdAt: isoDate,
      /** Its sessions overlapping the last 24 h, oldest first. */
      sessions24h: z.array(fleetSession),
    }),
  ),
});

export const historyResponse = z.object({
  range: z.enum(['hour', 'day']),
  from: isoDate,
  to: isoDate,
  /** Sample times (epoch ms) and the devices connected at each (null: before the history begins). */
  at: z.array(z.number().int()),
  connected: z.array(z.number().int().nullable()),
  /** Detection delays of the last 24 h by bucket (upper bound in seconds; null: above the last). */
  detection: z.array(z.object({ le: z.number().nullable(), count: z.number().int() })),
});

export const healthResponse = z.object({ status: z.string() });
export const readyResponse = z.object({
  status: z.literal('ready'),
  checks: z.record(z.string(), z.string()),
});

/** An event as sent on Moth and served by the feeds: flat, numbered in its stream, signed. */
export const signedEvent = z.looseObject({
  type: z.enum(EVENT_TYPES),
  eventId: z.uuid(),
  occurredAt: isoDate,
  deviceId: z.uuid().nullable(),
  stream: z.string(),
  seq: z.number().int().min(1),
  kid: z.string(),
  sig: z.string(),
});
export const eventFeedResponse = z.object({
  stream: z.string(),
  events: z.array(signedEvent),
  last: z.number().int(),
});
export const signingKeysResponse = z.object({
  keys: z.array(
    z.object({
      kty: z.literal('OKP'),
      crv: z.literal('Ed25519'),
      x: z.string(),
      kid: z.string(),
      alg: z.literal('EdDSA'),
      use: z.literal('sig'),
    }),
  ),
});
export const keyRotationResponse = signingKeysResponse.extend({ kid: z.string() });

const uptimeFigures = {
  observedSeconds: z.number(),
  connectedSeconds: z.number(),
  connectedPercent: z.number().nullable(),
  outages: z.record(z.string(), z.object({ count: z.number().int(), seconds: z.number() })),
  mtbfSeconds: z.number().nullable(),
};
const uptimeBody = {
  from: isoDate,
  to: isoDate,
  ...uptimeFigures,
  buckets: z.array(z.object({ from: isoDate, to: isoDate, ...uptimeFigures })).optional(),
};
export const deviceUptimeResponse = z.object({ deviceId: z.uuid(), ...uptimeBody });
export const fleetUptimeResponse = z.object({ devices: z.number().int(), ...uptimeBody });

const webhookOut = z.object({
  id: z.uuid(),
  url: z.string(),
  events: z.array(z.string()),
  offlineForSeconds: z.number().int().nullable(),
  group: z.string().nullable(),
  expectedDisconnects: z.boolean(),
  /** Deliveries on their way to the receiver at once, once it answered. */
  concurrency: z.number().int(),
  createdAt: isoDate,
  /** The receiver's circuit: open after repeated failures (nothing is sent until `openUntil`). */
  circuit: z.object({
    state: z.enum(['closed', 'open', 'half-open']),
    consecutiveFailures: z.number().int(),
    openUntil: isoDate.nullable(),
  }),
});
/** At creation only: with the secret deliveries are signed with. */
export const webhookCreatedResponse = webhookOut.extend({ secret: z.string().min(32) });
/** One webhook, with its backlog: deliveries pending. */
export const webhookResponse = webhookOut.extend({ pending: z.number().int() });
export const webhooksResponse = z.object({ webhooks: z.array(webhookOut) });
export const auditResponse = z.object({
  entries: z.array(
    z.object({
      id: z.number().int(),
      at: isoDate,
      actor: z.string(),
      address: z.string(),
      action: z.string(),
      target: z.string().nullable(),
      before: z.unknown(),
      after: z.unknown(),
    }),
  ),
  last: z.number().int(),
});
export const deliveriesResponse = z.object({
  deliveries: z.array(
    z.object({
      id: z.uuid(),
      eventId: z.uuid(),
      eventType: z.string(),
      deviceId: z.uuid().nullable(),
      status: z.enum(['PENDING', 'DELIVERED', 'FAILED', 'SKIPPED']),
      attempts: z.number().int(),
      lastStatusCode: z.number().int().nullable(),
      lastError: z.string().nullable(),
      dueAt: isoDate,
      createdAt: isoDate,
      finishedAt: nullableDate,
    }),
  ),
});
