import Router from '@koa/router';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Config } from '../../config';
import {
  hashSecret,
  newBusId,
  newToken,
  secretMatches,
  tokenHash,
  type SecretHash,
} from '../../domain/credentials';
import { DEVICE_STATUSES, registrationSchema, trackEndpoint } from '../../domain/device';
import { AppError, conflict, forbidden, notFound, tooManyAttempts } from '../../domain/errors';
import { clientEvent } from '../../domain/events';
import { groupNameSchema, resolvePolicy } from '../../domain/policy';
import {
  findLiveDevice,
  insertDeviceWithEvent,
  listDevices,
  lockLiveDevice,
  markDeviceDeleted,
  replaceTokenHash,
  replaceTokenHashes,
  setMaintenance,
  type Device,
  type Maintenance,
} from '../../db/devices';
import { isUniqueViolation, type Db } from '../../db/knex';
import { appendEvents } from '../../db/outbox';
import { listSessions } from '../../db/sessions';
import { effectsOfSessions } from '../../db/effects';
import { disconnectDevices, type Disconnected } from '../../db/transitions';
import type { AttemptLimiter } from '../../redis/rate-limit';
import type { Authenticator } from '../auth';
import { readJson } from '../body';
import { booleanQuery, limitQuery, parseInput } from '../validate';

/** What the device routes need beyond the database. */
export interface DeviceRouteDeps {
  readonly config: Pick<Config, 'channels' | 'MOTH_SHARED_BUS'>;
  readonly db: Db;
  readonly auth: Authenticator;
  readonly badSecrets: AttemptLimiter;
  readonly countAuthFailure: (surface: 'registration') => void;
  /** The stored registration secret, if one is set. */
  readonly registrationSecret: () => Promise<SecretHash | undefined>;
  /** Liveness as the gateway sees it (Redis); absent fields fall back to Postgres. */
  readonly liveness: {
    lastHeardAt(deviceId: string): Promise<Date | null>;
    /** Called after a token changed or a device went away: the old token must stop working at once. */
    forgetToken(deviceId: string, tokenHash: string): Promise<void>;
    forgetTokens(revoked: readonly { deviceId: string; tokenHash: string }[]): Promise<void>;
    forgetDevice(deviceId: string): Promise<void>;
  };
  /** The server's `device.healthcheckMaxConsecutiveMisses` (what a device without a policy has). */
  readonly serverMaxMisses: () => Promise<number>;
  /** Enqueues the effects a disconnect wrote (may be a no-op before the effect workers exist). */
  readonly enqueueEffects: (d: readonly Disconnected[]) => Promise<void>;
}

const uuid = z.uuid();
export const deviceListQuery = z.strictObject({
  status: z.enum(DEVICE_STATUSES).optional(),
  group: groupNameSchema.optional(),
  flapping: booleanQuery,
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
    channels: { deviceManagement: channels.deviceBusForRobot(d.busId) },
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
  };
}

function presentDevice(d: Device, lastHeardAt: Date | null, sharedBus: boolean) {
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

/** Reads the `:id` parameter; anything that is not a UUID cannot name a device. */
export function deviceIdParam(raw: string | undefined): string {
  const parsed = uuid.safeParse(raw);
  if (!parsed.success) throw deviceNotFound();
  return parsed.data;
}
export const deviceNotFound = () => notFound('DEVICE_NOT_FOUND', 'no such device');

const MAX_BAD_SECRETS_MESSAGE = 'too many registrations with a wrong secret from this address';

export function deviceRoutes(deps: DeviceRouteDeps): Router {
  const { db, auth } = deps;
  const router = new Router();

  router.post('/devices', async (ctx) => {
    const body = parseInput(registrationSchema, await readJson(ctx));
    const address = ctx.request.ip;
    const stored = await deps.registrationSecret();
    // Without a stored secret the comparison still runs, so timing does not reveal the configuration.
    const matches = secretMatches(body.secretKey, stored ?? hashSecret(randomUUID()));
    const valid = Boolean(stored) && matches;
    // Either way one step in Redis, after the comparison: a bad secret is counted as it is answered
    // (only the first 10 of a window hear 401, however many come at once), a good one is refused
    // while its address is blocked.
    if (!valid) deps.countAuthFailure('registration');
    const retryAfter = valid
      ? await deps.badSecrets.blockedFor(address)
      : await deps.badSecrets.fail(address);
    if (retryAfter > 0) throw tooManyAttempts(MAX_BAD_SECRETS_MESSAGE, retryAfter);
    if (!valid) throw new AppError(401, 'INVALID_SECRET_KEY', 'the registration secret key is not valid');
    const token = newToken();
    const id = randomUUID();
    let device: Device;
    try {
      device = await insertDeviceWithEvent(
        db,
        {
          id,
          name: body.name,
          tokenHash: tokenHash(token),
          busId: newBusId(),
          tracks: body.tracks,
          actions: body.actions,
          group: body.group ?? null,
        },
        clientEvent('DEVICE_REGISTERED', id, { name: body.name }),
      );
    } catch (err) {
      if (isUniqueViolation(err, 'devices_name_live_unique')) {
        throw conflict('DEVICE_NAME_TAKEN', `a device named "${body.name}" is already registered`, {
          field: 'name',
        });
      }
      throw err;
    }
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
      channels: { deviceManagement: deps.config.channels.deviceBusForRobot(device.busId) },
    };
  });

  router.get('/devices', async (ctx) => {
    await auth.operator(ctx);
    const query = parseInput(deviceListQuery, ctx.query);
    const page = await listDevices(db, {
      status: query.status,
      group: query.group,
      flapping: query.flapping,
      afterSeq: query.cursor,
      limit: query.limit,
    });
    const last = page.devices.at(-1);
    ctx.body = {
      devices: page.devices.map((d) => presentDevice(d, null, deps.config.MOTH_SHARED_BUS)),
      nextCursor: page.more && last ? encodeCursor(last.seq) : null,
    };
  });

  router.get('/devices/:id', async (ctx) => {
    const caller = await auth.caller(ctx);
    const id = deviceIdParam(ctx.params.id);
    if (caller.kind === 'device' && caller.deviceId !== id) throw forbidden('a device may read only itself');
    const device = await findLiveDevice(db, id);
    if (!device) throw deviceNotFound();
    const shared = deps.config.MOTH_SHARED_BUS;
    ctx.body = {
      ...presentDevice(device, await deps.liveness.lastHeardAt(id), shared),
      // The bus is shown to the device itself and to the operator, never in a list.
      ...presentDeviceBus(device, deps.config.channels, shared),
      healthcheck: resolvePolicy(device.policy, device.groupPolicy, await deps.serverMaxMisses()),
    };
  });

  router.get('/devices/:id/sessions', async (ctx) => {
    await auth.operator(ctx);
    const id = deviceIdParam(ctx.params.id);
    const { limit } = parseInput(limitQuery, ctx.query);
    if (!(await findLiveDevice(db, id))) throw deviceNotFound();
    const sessions = await listSessions(db, id, limit);
    const effects = await effectsOfSessions(
      db,
      sessions.map((s) => s.id),
    );
    ctx.body = {
      sessions: sessions.map((s) => ({
        id: s.id,
        startedAt: s.startedAt.toISOString(),
        startedRound: s.startedRound,
        endedAt: s.endedAt?.toISOString() ?? null,
        endReason: s.endReason,
        roundsMissed: s.roundsMissed,
        lastRoundHeard: s.lastRoundHeard,
        effects: effects
          .filter((e) => e.sessionId === s.id)
          .map((e) => ({
            kind: e.kind,
            status: e.status,
            attempts: e.attempts,
            lastError: e.lastError,
            doneAt: e.doneAt?.toISOString() ?? null,
          })),
      })),
    };
  });

  router.delete('/devices/:id', async (ctx) => {
    await auth.operator(ctx);
    const id = deviceIdParam(ctx.params.id);
    const { disconnected } = await db.transaction(async (trx) => {
      const device = await lockLiveDevice(trx, id);
      if (!device) throw deviceNotFound();
      const hash = await trx('devices').where({ id }).first<{ token_hash: string } | undefined>('token_hash');
      const ended =
        device.status === 'CONNECTED'
          ? await disconnectDevices(
              trx,
              [
                {
                  deviceId: id,
                  beforeRound: null,
                  missedRounds: 0,
                  lastRoundHeard: null,
                  lastHeartbeatAt: null,
                },
              ],
              'DELETED',
            )
          : [];
      await markDeviceDeleted(trx, id);
      await appendEvents(trx, [clientEvent('DEVICE_DELETED', id, { name: device.name })]);
      // Revoked in the heartbeat cache before the commit: if Redis cannot take it, nothing changes.
      await deps.liveness.forgetToken(id, hash!.token_hash);
      return { disconnected: ended };
    });
    // Committed: the rest is best effort (a stale index entry is harmless, the sweeper enqueues effects).
    await deps.liveness.forgetDevice(id).catch(() => {});
    await deps.enqueueEffects(disconnected).catch(() => {});
    ctx.status = 204;
  });

  // Every old token stops working at once, as for one device; the new ones are in this answer only.
  router.post('/devices/tokens/rotate', async (ctx) => {
    await auth.operator(ctx);
    // `all` only says that no filter is meant.
    const { ids, status, usesSharedBus } = parseInput(rotateTokensBody, await readJson(ctx));
    const tokens = new Map<string, string>();
    const rotated = await db.transaction(async (trx) => {
      const changed = await replaceTokenHashes(trx, { ids, status, usesSharedBus }, (id) => {
        const token = newToken();
        tokens.set(id, token);
        return tokenHash(token);
      });
      await appendEvents(
        trx,
        changed.map((d) => clientEvent('DEVICE_TOKEN_ROTATED', d.id)),
      );
      await deps.liveness.forgetTokens(changed.map((d) => ({ deviceId: d.id, tokenHash: d.oldHash })));
      return changed;
    });
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      count: rotated.length,
      rotated: rotated.map((d) => ({ id: d.id, name: d.name, token: tokens.get(d.id)! })),
    };
  });

  // Maintenance: a device that goes silent meanwhile is disconnected as MAINTENANCE, with no effect but
  // stopping its recordings (if asked), and left out of the mass-silence ratio. Ends on its own.
  router.post('/devices/:id/maintenance', async (ctx) => {
    await auth.operator(ctx);
    const id = deviceIdParam(ctx.params.id);
    const body = parseInput(maintenanceBody, await readJson(ctx));
    const window = { until: new Date(body.until), reason: body.reason, stopsRecordings: body.stopRecordings };
    if (!(await setMaintenance(db, id, window))) throw deviceNotFound();
    ctx.body = { id, maintenance: presentWindow(window) };
  });

  router.delete('/devices/:id/maintenance', async (ctx) => {
    await auth.operator(ctx);
    const id = deviceIdParam(ctx.params.id);
    if (!(await setMaintenance(db, id, null))) throw deviceNotFound();
    ctx.status = 204;
  });

  router.post('/devices/:id/token', async (ctx) => {
    await auth.operator(ctx);
    const id = deviceIdParam(ctx.params.id);
    const token = newToken();
    await db.transaction(async (trx) => {
      const row = await trx('devices')
        .where({ id })
        .whereNull('deleted_at')
        .forUpdate()
        .first<{ token_hash: string } | undefined>('token_hash');
      if (!row) throw deviceNotFound();
      await replaceTokenHash(trx, id, tokenHash(token));
      await appendEvents(trx, [clientEvent('DEVICE_TOKEN_ROTATED', id)]);
      // The old token stops working at once: revoked in the heartbeat cache before the commit.
      await deps.liveness.forgetToken(id, row.token_hash);
    });
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { id, token };
  });

  return router;
}
