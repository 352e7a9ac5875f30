import Router from '@koa/router';
import type { Middleware } from 'koa';
import { readFileSync } from 'node:fs';
import { unauthorized } from '../../domain/errors';
import { resolvePolicy, type ServerPolicy } from '../../domain/policy';
import type { Actor } from '../../domain/operators';
import type { ApiOperations } from '../../operations';
import { inlineHashes } from '../admin';
import { readJson } from '../body';
import { parseInput } from '../validate';
import {
  deviceIdParam,
  deviceNotFound,
  maintenanceBody,
  maintenanceWindow,
  presentDevice,
  presentSession,
  presentWindow,
} from './devices';
import { presentRecording, presentStream } from './media';
import { presentTask } from './tasks';

const DAY_MS = 86_400_000;
const PAGE_HTML = readFileSync(new URL('../device-page.html', import.meta.url), 'utf8');
/** The page runs its own inline script and style (named by hash) and nothing else. */
const PAGE_CSP = [
  "default-src 'none'",
  `script-src ${inlineHashes(PAGE_HTML, 'script')}`,
  `style-src ${inlineHashes(PAGE_HTML, 'style')}`,
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

interface DevicePageDeps {
  pageAuth: Middleware;
  ops: ApiOperations;
  lastHeardAt: (id: string) => Promise<Date | null>;
  serverPolicy: () => Promise<ServerPolicy>;
  sharedBus: boolean;
}

/** The operator the page's auth admitted, by their token's label (never guessed). */
function actor(ctx: { state: { operator?: string }; request: { ip: string } }): Actor {
  if (ctx.state.operator === undefined) throw unauthorized();
  return { label: ctx.state.operator, address: ctx.request.ip };
}

/** What the robot's page shows (`page.json`). */
async function pageData(deps: DevicePageDeps, id: string) {
  const { ops } = deps;
  const device = await ops.queries.liveDevice(id);
  if (!device) throw deviceNotFound();
  const [heard, server, sessions, tasks, recordings, streams, audit, link, groupAudit] = await Promise.all([
    deps.lastHeardAt(id),
    deps.serverPolicy(),
    ops.queries.sessionsWithEffects(id, 20),
    ops.queries.tasks(id, 20),
    ops.queries.recordings(id, 20),
    ops.queries.analysisStreams(id, 20),
    ops.queries.audit({ after: 0, limit: 100, target: id }),
    ops.queries.linkBuckets(id, new Date(Date.now() - DAY_MS)),
    device.group === null ? [] : ops.queries.audit({ after: 0, limit: 100, target: device.group }),
  ]);
  return {
    device: {
      ...presentDevice(device, heard, deps.sharedBus),
      healthcheck: resolvePolicy(device.policy, device.groupPolicy, server),
      maintenance: presentWindow(device.maintenance),
    },
    sessions: sessions.map(presentSession),
    tasks: tasks.map(presentTask),
    recordings: recordings.map(presentRecording),
    streams: streams.map(presentStream),
    audit,
    /** Maintenance windows opened and closed on it and on its group, newest first. */
    maintenanceHistory: [...audit, ...groupAudit]
      .filter((a) => a.action.endsWith('.maintenance_opened') || a.action.endsWith('.maintenance_closed'))
      .sort((a, b) => +new Date(b.at) - +new Date(a.at)),
    /** Its link per five minutes over the last day, oldest first (none: not measured then). */
    linkHistory: link.map((b) => ({
      startsAt: b.startsAt.toISOString(),
      p50Ms: b.stats.p50Ms,
      p95Ms: b.stats.p95Ms,
      answered: b.stats.answered,
      missed: b.stats.missed,
    })),
  };
}

/**
 * A page per robot (`/admin/devices/:id`, linked from the fleet page): what it is and why, its
 * policy and where it comes from, its sessions with their effects, tasks, recordings, streams,
 * maintenance and audit log; and an operator's actions on it (a new token, a maintenance window),
 * each a same-origin write (a cross-site form cannot use the browser's Basic credentials) recorded
 * in the audit log under the token's label.
 */
export function devicePageRoutes(deps: DevicePageDeps): Router {
  const { ops } = deps;
  const router = new Router();

  router.get('/admin/devices/:id', deps.pageAuth, (ctx) => {
    deviceIdParam(ctx.params.id);
    ctx.type = 'html';
    ctx.set({ 'Cache-Control': 'no-store', 'Content-Security-Policy': PAGE_CSP });
    ctx.body = PAGE_HTML;
  });

  router.get('/admin/devices/:id/page.json', deps.pageAuth, async (ctx) => {
    const id = deviceIdParam(ctx.params.id);
    const body = await pageData(deps, id);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = body;
  });

  router.post('/admin/devices/:id/token', deps.pageAuth, async (ctx) => {
    const id = deviceIdParam(ctx.params.id);
    const token = await ops.rotateTokens.one(actor(ctx), id);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { id, token };
  });

  router.post('/admin/devices/:id/maintenance', deps.pageAuth, async (ctx) => {
    const id = deviceIdParam(ctx.params.id);
    const window = maintenanceWindow(parseInput(maintenanceBody, await readJson(ctx)));
    if (!(await ops.configure.deviceMaintenance(actor(ctx), id, window))) throw deviceNotFound();
    ctx.body = { id, maintenance: presentWindow(window) };
  });
  return router;
}
