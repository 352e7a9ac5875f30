import Router from '@koa/router';
import { z } from 'zod';
import type { ApiOperations } from '../../operations';
import type { DeviceHistory } from '../../operations/queries';
import { combine, uptime, uptimeBuckets, type UptimeReport } from '../../domain/uptime';
import { AppError, validationFailed } from '../../domain/errors';
import { groupNameSchema } from '../../domain/policy';
import type { Authenticator } from '../auth';
import { parseInput } from '../validate';
import { deviceIdParam, deviceNotFound } from './devices';

const DAY = 86_400_000;
/** 10,000 devices by the hours of two days. */
const MAX_FLEET_REPORTS = 500_000;
const BUCKET_MS = { hour: 3_600_000, day: DAY } as const;

/** The query as written (the OpenAPI document describes this); `uptimeQuery` reads it. */
export const uptimeQueryFields = z.strictObject({
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  bucket: z.enum(['hour', 'day']).optional(),
  /** Fleet-wide only: the devices of one group. */
  group: groupNameSchema.optional(),
});

export const uptimeQuery = uptimeQueryFields
  .transform((q) => {
    const to = q.to ? Date.parse(q.to) : Date.now();
    return { from: q.from ? Date.parse(q.from) : to - DAY, to, bucket: q.bucket, group: q.group };
  })
  .refine((q) => q.from < q.to, { message: 'from must be before to', path: ['from'] })
  .refine((q) => q.to - q.from <= 366 * DAY, { message: 'at most 366 days', path: ['to'] })
  .refine((q) => !q.bucket || (q.to - q.from) / BUCKET_MS[q.bucket] <= 1000, {
    message: 'at most 1,000 buckets',
    path: ['bucket'],
  });

type Query = z.infer<typeof uptimeQuery>;

/** One report per device history and bucket, summed over the histories given. */
function report(histories: readonly DeviceHistory[], q: Query) {
  const now = Date.now();
  const observed = (h: DeviceHistory) => ({
    from: q.from,
    to: q.to,
    now,
    createdAt: h.createdAt,
    deletedAt: h.deletedAt,
  });
  const whole = combine(histories.map((h) => uptime(h.sessions, observed(h))));
  let buckets: ({ from: string; to: string } & UptimeReport)[] | undefined;
  if (q.bucket) {
    const perDevice = histories.map((h) => uptimeBuckets(h.sessions, observed(h), q.bucket!));
    // Every device's buckets are the same ranges: the i-th of each are summed.
    buckets = (perDevice[0] ?? []).map((b, i) => ({
      from: b.from,
      to: b.to,
      ...combine(perDevice.map((d) => d[i]!.report)),
    }));
  }
  return {
    from: new Date(q.from).toISOString(),
    to: new Date(q.to).toISOString(),
    ...whole,
    ...(buckets ? { buckets } : {}),
  };
}

/** Connected time, outages by reason and MTBF from the session history, per device and fleet-wide. */
export function uptimeRoutes(deps: {
  auth: Authenticator;
  ops: Pick<ApiOperations, 'queries'>;
  /** Device-bucket reports one fleet request may compute (each holds the web process's loop a little). */
  maxReports?: number;
}): Router {
  const maxReports = deps.maxReports ?? MAX_FLEET_REPORTS;
  const router = new Router();
  router.get('/devices/:id/uptime', async (ctx) => {
    await deps.auth.operator(ctx);
    const id = deviceIdParam(ctx.params.id);
    const q = parseInput(uptimeQuery, ctx.query);
    if (q.group !== undefined)
      throw validationFailed([{ field: 'group', message: 'a filter of the fleet, not of one device' }]);
    const histories = await deps.ops.queries.histories(new Date(q.from), new Date(q.to), { deviceId: id });
    if (histories.length === 0) {
      if (!(await deps.ops.queries.deviceExisted(id))) throw deviceNotFound();
    }
    ctx.body = { deviceId: id, ...report(histories, q) };
  });
  router.get('/fleet/uptime', async (ctx) => {
    await deps.auth.operator(ctx);
    const q = parseInput(uptimeQuery, ctx.query);
    const histories = await deps.ops.queries.histories(new Date(q.from), new Date(q.to), { group: q.group });
    const buckets = q.bucket ? Math.ceil((q.to - q.from) / BUCKET_MS[q.bucket]) : 1;
    if (histories.length * buckets > maxReports)
      throw new AppError(
        400,
        'RANGE_TOO_LARGE',
        `${histories.length} devices x ${buckets} buckets is more than ${maxReports} reports: a shorter range, or day buckets`,
      );
    ctx.body = {
      ...(q.group !== undefined && { group: q.group }),
      devices: histories.length,
      ...report(histories, q),
    };
  });
  return router;
}
