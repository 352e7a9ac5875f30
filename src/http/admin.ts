import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { KoaAdapter } from '@bull-board/koa';
import Router from '@koa/router';
import type { Queue } from 'bullmq';
import type { Middleware } from 'koa';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { constantTimeEqual } from '../domain/credentials';
import { DEVICE_STATUSES } from '../domain/device';
import { AppError } from '../domain/errors';
import { countDevicesByStatus, fleetOverview } from '../db/fleet';
import type { Db } from '../db/knex';
import { parseInput } from './validate';

/**
 * HTTP Basic auth for the operator pages: any user name, the admin token as password (a browser can
 * ask for it). A Bearer admin token is accepted too.
 */
export function operatorPageAuth(adminToken: string): Middleware {
  return async (ctx, next) => {
    const header = ctx.get('authorization');
    let presented: string | undefined;
    const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    if (basic) {
      const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
      presented = decoded.slice(decoded.indexOf(':') + 1);
    } else presented = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
    if (presented === undefined || !constantTimeEqual(presented, adminToken)) {
      throw new AppError(401, 'UNAUTHORIZED', 'operator credentials required', undefined, {
        'WWW-Authenticate': 'Basic realm="rollcall", charset="UTF-8"',
      });
    }
    await next();
  };
}

/**
 * Whether a path names an operator page however it is spelled (case, repeated or encoded slashes,
 * encoded letters): such a request needs operator credentials before anything routes it.
 */
export function isOperatorPath(path: string): boolean {
  let p = path;
  for (let i = 0; i < 3 && /%[0-9a-f]{2}/i.test(p); i++) {
    try {
      p = decodeURIComponent(p);
    } catch {
      break;
    }
  }
  p = p.replace(/[\\/]+/g, '/').toLowerCase();
  return p === '/admin' || p.startsWith('/admin/');
}

const DASHBOARD = '/admin/queues';

/**
 * The BullMQ dashboard (retry, clean, promote...) on every queue, mounted at `/admin/queues`, behind
 * operator auth on exactly the paths it serves.
 */
export function queueDashboard(queues: readonly Queue[], pageAuth: Middleware): Middleware {
  const serverAdapter = new KoaAdapter();
  serverAdapter.setBasePath(DASHBOARD);
  createBullBoard({ queues: queues.map((q) => new BullMQAdapter(q)), serverAdapter });
  const dashboard = serverAdapter.registerPlugin();
  return async (ctx, next) => {
    if (ctx.path === DASHBOARD || ctx.path.startsWith(`${DASHBOARD}/`))
      await pageAuth(ctx, async () => {
        await dashboard(ctx, next);
      });
    else await next();
  };
}

const FLEET_HTML = readFileSync(new URL('./fleet-page.html', import.meta.url), 'utf8');
export const fleetQuery = z.strictObject({
  status: z.enum(DEVICE_STATUSES).optional(),
  limit: z.coerce.number().int().min(1).max(5000).default(1000),
});

/** The fleet page (`/admin`) and the JSON it refreshes from every round (`/admin/fleet.json`). */
export function fleetRoutes(deps: {
  db: Db;
  /** Operator auth, on each route. */
  pageAuth: Middleware;
  intervalSeconds: () => Promise<number>;
  lastHeardAt: (ids: string[]) => Promise<Map<string, number>>;
  /** Whether the shared bus of earlier versions is still served (the migration window). */
  sharedBus: boolean;
}): Router {
  const router = new Router();
  router.get('/admin', deps.pageAuth, (ctx) => {
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = FLEET_HTML;
  });
  router.get('/admin/fleet.json', deps.pageAuth, async (ctx) => {
    const q = parseInput(fleetQuery, ctx.query);
    const [counts, devices, intervalSeconds] = await Promise.all([
      countDevicesByStatus(deps.db),
      fleetOverview(deps.db, q.status, q.limit),
      deps.intervalSeconds(),
    ]);
    const heard = await deps.lastHeardAt(devices.map((d) => d.id));
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      generatedAt: new Date().toISOString(),
      intervalSeconds,
      counts: { CONNECTED: counts.CONNECTED ?? 0, DISCONNECTED: counts.DISCONNECTED ?? 0 },
      devices: devices.map((d) => {
        const redisMs = heard.get(d.id);
        const last = Math.max(redisMs ?? 0, d.lastHeartbeatAt?.getTime() ?? 0);
        return {
          id: d.id,
          name: d.name,
          status: d.status,
          lastHeartbeatAt: last > 0 ? new Date(last).toISOString() : null,
          sessionStartedAt: d.status === 'CONNECTED' ? (d.connectedAt?.toISOString() ?? null) : null,
          usesSharedBus: deps.sharedBus && d.heardOnBus === 'shared',
          recentSessions: d.recentSessions.map((s) => ({
            startedAt: s.startedAt.toISOString(),
            endedAt: s.endedAt?.toISOString() ?? null,
            endReason: s.endReason,
          })),
        };
      }),
    };
  });
  return router;
}
