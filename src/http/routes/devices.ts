import Router from '@koa/router';
import { z } from 'zod';
import type { Config } from '../../config';
import { DEVICE_STATUSES, registrationSchema, trackEndpoint } from '../../domain/device';
import { forbidden } from '../../domain/errors';
import { shownMs } from '../../domain/link';
import { groupNameSchema, MAX_LINK_P95_MS, resolvePolicy, type ServerPolicy } from '../../domain/policy';
import type { ApiOperations } from '../../operations';
import { deviceNotFound } from '../../operations/device-errors';
import type { Device, EffectRow, Maintenance, SessionView } from '../../operations/queries';
import type { Authenticator } from '../auth';
import { readJson } from '../body';
import { booleanQuery, limitQuery, parseInput } from '../validate';

/** What the device routes need. */
export interface DeviceRouteDeps {
  readonly config: Pick<Config, 'channels' | 'MOTH_SHARED_BUS'>;
  readonly auth: Authenticator;
  readonly ops: Pick<
    ApiOperations,
    'queries' | 'configure' | 'registerDevice' | 'deleteDevice' | 'rotateTokens'
  >;
  /** When the gateway heard the device last (Redis); absent, Postgres's last heartbeat is shown. */
  readonly lastHeardAt: (deviceId: string) => Promise<Date | null>;
  /** The server's level of the health-check policy (what a device and its group leave unset). */
  readonly serverPolicy: () => Promise<ServerPolicy>;
}

const uuid = z.uuid();
export const deviceListQuery = z.strictObject({
  status: z.enum(DEVICE_STATUSES).optional(),
  group: groupNameSchema.optional(),
  flapping: booleanQuery,
  /** Devices whose link's p95 latency is above this many ms, or `degraded`. */
  linkWorseThan: z
    .union([z.literal('degraded'), z.coerce.number().int().min(0).max(MAX_LINK_P95_MS)])
    .optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,24}$/, 'not a cursor returned by this API')
    .transform((c, ctx) => {
      const seq = Number(Buffer.from(c, 'base64url').toString('utf8'));
      if (!Number.isSafeInteger(seq) || seq < 0) {
        ctx.addIssue({ code: 'custom', message: 'not a cursor returned by this API' });
        return z.NEVER;
      }
      return seq;
    })
    .optional(),
});

const encodeCursor = (seq: number) => Buffer.from(String(seq)).toString('base64url');

function presentTracks(d: Pick<Device, 'publicChannel' | 'tracks'>) {
  return d.tracks.map((t) => ({
    name: t.name,
    type: t.type,
    endpoint: trackEndpoint(d.publicChannel, t.name),
  }));
}

/** The device's own view adds its bus (a secret of the device's as much as its token). */
function presentDeviceBus(d: Device, channels: Config['channels'], sharedBus: boolean) {
  return {
    channels: { moth: channels.mothForRobots, deviceManagement: channels.deviceBusForRobot(d.busId) },
    ...presentHearing(d, sharedBus),
  };
}

/** A maintenance window as the API shows it. */
export const presentWindow = (m: Maintenance | null) => m && { ...m, until: m.until.toISOString() };

/**
 * How the device is heard: still on the shared bus of earlier versions (to be reconfigured), with
 * proofs (v2) or its token, and whether that token went out in a text frame (to be rotated).
 */
function presentHearing(d: Device, sharedBus: boolean) {
  return {
    usesSharedBus: sharedBus && d.heardOnBus === 'shared',
    heartbeatProtocol: d.proofsSince === null ? ('v1' as const) : ('v2' as const),
    tokenExposed: d.tokenExposedAt !== null,
    maintenance: presentWindow(d.maintenance),
    flapping: d.flappingSince && { since: d.flappingSince.toISOString() },
    busUnstable: d.busUnstableSince && { since: d.busUnstableSince.toISOString() },
  };
}

export function presentDevice(d: Device, lastHeardAt: Date | null, sharedBus: boolean) {
  const last = [lastHeardAt, d.lastHeartbeatAt]
    .filter((x): x is Date => x !== null)
    .sort((a, b) => +b - +a)[0];
  return {
    id: d.id,
    name: d.name,
    status: d.status,
    tracks: presentTracks(d),
    actions: d.actions,
    createdAt: d.createdAt.toISOString(),
    connectedAt: d.connectedAt?.toISOString() ?? null,
    disconnectedAt: d.disconnectedAt?.toISOString() ?? null,
    lastHeartbeatAt: last?.toISOString() ?? null,
    currentSessionId: d.currentSessionId,
    group: d.group,
    ...presentHearing(d, sharedBus),
    link: presentLink(d.link),
  };
}

/** A link's figures, rounded to what a reader can use (0.1 ms, 0.1 %). */
function presentLink(l: Device['link']) {
  if (!l) return null;
  return {
    state: l.state,
    since: l.stateSince.toISOString(),
    p50Ms: shownMs(l.p50Ms),
    p95Ms: shownMs(l.p95Ms),
    maxMs: shownMs(l.maxMs),
    jitterMs: shownMs(l.jitterMs),
    missShare: Math.round(l.missShare * 1000) / 1000,
    rounds: l.answered + l.missed,
    measuredAt: l.measuredAt.toISOString(),
  };
}

/** Which devices `POST /devices/tokens/rotate` takes: named outright, never by an empty body. */
export const rotateTokensBody = z
  .strictObject({
    all: z.literal(true).optional(),
    ids: z.array(uuid).min(1).max(10_000).optional(),
    status: z.enum(DEVICE_STATUSES).optional(),
    usesSharedBus: z.boolean().optional(),
  })
  .refine(
    (b) =>
      (b.all === true) !== (b.ids !== undefined || b.status !== undefined || b.usesSharedBus !== undefined),
    {
      message: 'either {"all": true} or a filter (ids, status, usesSharedBus), not both',
    },
  );

const MAX_MAINTENANCE_DAYS = 30;
/** A maintenance window: until when (in the future, at most 30 days ahead) and why. */
export const maintenanceBody = z.strictObject({
  until: z.iso
    .datetime({ offset: true })
    .refine((u) => Date.parse(u) > Date.now(), 'must be in the future')
    .refine(
      (u) => Date.parse(u) <= Date.now() + MAX_MAINTENANCE_DAYS * 86_400_000,
      `at most ${MAX_MAINTENANCE_DAYS} days ahead`,
    ),
  reason: z.string().trim().min(1).max(200),
  /** Should it go silent meanwhile, stop its recordings (default) or leave them running. */
  stopRecordings: z.boolean().default(true),
});

/** The window a maintenance body opens. */
export const maintenanceWindow = (b: z.infer<typeof maintenanceBody>): Maintenance => ({
  until: new Date(b.until),
  reason: b.reason,
  stopsRecordings: b.stopRecordings,
});

/** Reads the `:id` parameter; anything that is not a UUID cannot name a device. */
export function deviceIdParam(raw: string | undefined): string {
  const parsed = uuid.safeParse(raw);
  if (!parsed.success) throw deviceNotFound();
  return parsed.data;
}
export { deviceNotFound };

export const presentSession = (s: SessionView & { effects: readonly EffectRow[] }) => ({
  id: s.id,
  startedAt: s.startedAt.toISOString(),
  startedRound: s.startedRound,
  endedAt: s.endedAt?.toISOString() ?? null,
  endReason: s.endReason,
  roundsMissed: s.roundsMissed,
  lastRoundHeard: s.lastRoundHeard,
  effects: s.effects.map((e) => ({
    kind: e.kind,
    status: e.status,
    attempts: e.attempts,
    lastError: e.lastError,
    doneAt: e.doneAt?.toISOString() ?? null,
  })),
});

export function deviceRoutes(deps: DeviceRouteDeps): Router {
  const router = new Router();
  readRoutes(router, deps);
  operatorRoutes(router, deps);
  return router;
}

/** Registration, and what a device or an operator reads of devices. */
function readRoutes(router: Router, deps: DeviceRouteDeps): void {
  const { auth, ops, config } = deps;
  router.post('/devices', async (ctx) => {
    const body = parseInput(registrationSchema, await readJson(ctx));
    const { device, token } = await ops.registerDevice(body, ctx.request.ip);
    ctx.status = 201;
    ctx.set('Location', `/devices/${device.id}`);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      id: device.id,
      name: device.name,
      token,
      status: device.status,
      tracks: presentTracks(device),
      actions: device.actions,
      createdAt: device.createdAt.toISOString(),
      channels: {
        moth: config.channels.mothForRobots,
        deviceManagement: config.channels.deviceBusForRobot(device.busId),
      },
    };
  });

  router.get('/devices', async (ctx) => {
    await auth.operator(ctx);
    const query = parseInput(deviceListQuery, ctx.query);
    const page = await ops.queries.devicePage({
      status: query.status,
      group: query.group,
      flapping: query.flapping,
      linkWorseThan: query.linkWorseThan,
      afterSeq: query.cursor,
      limit: query.limit,
    });
    const last = page.devices.at(-1);
    ctx.body = {
      devices: page.devices.map((d) => presentDevice(d, null, config.MOTH_SHARED_BUS)),
      nextCursor: page.more && last ? encodeCursor(last.seq) : null,
    };
  });

  router.get('/devices/:id', async (ctx) => {
    const caller = await auth.caller(ctx);
    const id = deviceIdParam(ctx.params.id);
    if (caller.kind === 'device' && caller.deviceId !== id) throw forbidden('a device may read only itself');
    const device = await ops.queries.liveDevice(id);
    if (!device) throw deviceNotFound();
    ctx.body = {
      ...presentDevice(device, await deps.lastHeardAt(id), config.MOTH_SHARED_BUS),
      // The bus is shown to the device itself and to the operator, never in a list.
      ...presentDeviceBus(device, config.channels, config.MOTH_SHARED_BUS),
      healthcheck: resolvePolicy(device.policy, device.groupPolicy, await deps.serverPolicy()),
    };
  });

  router.get('/devices/:id/sessions', async (ctx) => {
    await auth.operator(ctx);
    const id = deviceIdParam(ctx.params.id);
    const { limit } = parseInput(limitQuery, ctx.query);
    if (!(await ops.queries.liveDevice(id))) throw deviceNotFound();
    ctx.body = { sessions: (await ops.queries.sessionsWithEffects(id, limit)).map(presentSession) };
  });
}

/** What an operator does to devices: delete, new tokens, maintenance. */
function operatorRoutes(router: Router, deps: DeviceRouteDeps): void {
  const { auth, ops } = deps;
  router.delete('/devices/:id', async (ctx) => {
    const actor = await auth.operator(ctx);
    await ops.deleteDevice(actor, deviceIdParam(ctx.params.id));
    ctx.status = 204;
  });

  // Every old token stops working at once, as for one device; the new ones are in this answer only.
  router.post('/devices/tokens/rotate', async (ctx) => {
    const actor = await auth.operator(ctx);
    // `all` only says that no filter is meant.
    const { ids, status, usesSharedBus } = parseInput(rotateTokensBody, await readJson(ctx));
    const rotated = await ops.rotateTokens.many(actor, { ids, status, usesSharedBus });
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { count: rotated.length, rotated };
  });

  // Maintenance: a device that goes silent meanwhile is disconnected as MAINTENANCE, with no effect but
  // stopping its recordings (if asked), and left out of the mass-silence ratio. Ends on its own.
  router.post('/devices/:id/maintenance', async (ctx) => {
    const actor = await auth.operator(ctx);
    const id = deviceIdParam(ctx.params.id);
    const window = maintenanceWindow(parseInput(maintenanceBody, await readJson(ctx)));
    if (!(await ops.configure.deviceMaintenance(actor, id, window))) throw deviceNotFound();
    ctx.body = { id, maintenance: presentWindow(window) };
  });

  router.delete('/devices/:id/maintenance', async (ctx) => {
    const actor = await auth.operator(ctx);
    if (!(await ops.configure.deviceMaintenance(actor, deviceIdParam(ctx.params.id), null)))
      throw deviceNotFound();
    ctx.status = 204;
  });

  router.post('/devices/:id/token', async (ctx) => {
    const actor = await auth.operator(ctx);
    const id = deviceIdParam(ctx.params.id);
    const token = await ops.rotateTokens.one(actor, id);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { id, token };
  });
}
