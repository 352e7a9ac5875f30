import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { KoaAdapter } from '@bull-board/koa';
import Router from '@koa/router';
import type { Queue } from 'bullmq';
import type { Middleware } from 'koa';
import { createHash } from 'node:crypto';
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { z } from 'zod';
import { operatorLabel, type OperatorToken } from '../domain/operators';
import { DEVICE_STATUSES } from '../domain/device';
import { shownMs } from '../domain/link';
import { groupNameSchema } from '../domain/policy';
import { uptime } from '../domain/uptime';
import { DETECTION_BUCKETS } from '../metrics';
import { AppError, validationFailed } from '../domain/errors';
import type { ApiOperations } from '../operations';
import type { FleetCursor, FleetRow, FleetSession } from '../operations/queries';
import { asOperatorTokens, type CredentialGuard } from './auth';
import { booleanQuery, parseInput } from './validate';

/**
 * HTTP Basic auth for the operator pages: any user name, an operator token as password (a browser can
 * ask for it). A Bearer admin token is accepted too. Wrong ones are limited as on the API. Once a
 * request is admitted, the route's own check passes it on without asking Redis again.
 */
export function operatorPageAuth(
  operatorTokens: string | readonly OperatorToken[],
  guard: CredentialGuard,
): Middleware {
  const operators = asOperatorTokens(operatorTokens);
  const refused = () =>
    new AppError(401, 'UNAUTHORIZED', 'operator credentials required', undefined, {
      'WWW-Authenticate': 'Basic realm="rollcall", charset="UTF-8"',
    });
  return async (ctx, next) => {
    if (ctx.state.operatorAdmitted !== true) {
      const presented = presentedPassword(ctx.get('authorization'));
      if (presented === undefined) throw refused();
      const label = operatorLabel(operators, presented);
      if (label === undefined) await guard.refuse(ctx, 'pages', refused());
      ctx.state.operatorAdmitted = true;
      // Who acts, for the audit log of the pages' changes.
      ctx.state.operator = label;
    }
    await next();
  };
}

function presentedPassword(header: string): string | undefined {
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!basic) return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  return decoded.slice(decoded.indexOf(':') + 1);
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

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** The header a script sends to change something from outside a browser (`curl -H 'X-Rollcall-Operator: 1'`). */
export const OPERATOR_HEADER = 'x-rollcall-operator';

/**
 * A request that changes something on an operator page (the dashboard's retry, clean, add) must come
 * from our own pages, so a cross-site form cannot use the browser's cached Basic credentials: the
 * browser says so (`Sec-Fetch-Site`, else `Origin`), or the request carries a header no cross-site
 * form or fetch can send without a preflight we never grant. Neither: refused.
 */
export const sameOriginWrites: Middleware = async (ctx, next) => {
  if (
    !READS.has(ctx.method) &&
    !fromOwnPages(
      ctx.get(OPERATOR_HEADER),
      ctx.get('sec-fetch-site'),
      ctx.get('origin'),
      `${ctx.protocol}://${ctx.host}`,
    )
  )
    throw new AppError(
      403,
      'CROSS_SITE_REQUEST',
      `changes on operator pages come from those pages, or carry ${OPERATOR_HEADER}`,
    );
  await next();
};

function fromOwnPages(custom: string, site: string, origin: string, own: string): boolean {
  if (custom !== '') return true;
  if (site !== '') return site === 'same-origin';
  return origin !== '' && origin === own;
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
        ctx.set('Content-Security-Policy', DASHBOARD_CSP);
        await sameOriginWrites(ctx, async () => {
          await dashboard(ctx, next);
        });
      });
    else await next();
  };
}

const FLEET_HTML = readFileSync(new URL('./fleet-page.html', import.meta.url), 'utf8');
/**
 * The fleet page runs its own inline script and style and nothing else: the policy names them by
 * hash, so an injected script or style (were any field ever rendered unescaped) does not run.
 */
const FLEET_CSP = [
  "default-src 'none'",
  `script-src 'self' ${inlineHashes(FLEET_HTML, 'script')}`,
  `style-src 'self' ${inlineHashes(FLEET_HTML, 'style')}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** `'sha256-…'` of each inline `<tag>` body of a page, as CSP matches them. */
export function inlineHashes(html: string, tag: 'script' | 'style'): string {
  const bodies = [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => m[1]!);
  return bodies.map((b) => `'sha256-${createHash('sha256').update(b).digest('base64')}'`).join(' ');
}

/**
 * The dashboard (bull-board) loads its own scripts and styles, the fonts it names, and sets inline
 * styles from its components; it runs no inline script.
 */
const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline' https://fonts.googleapis.com",
  "font-src 'self' data: https://fonts.gstatic.com",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');
const DAY_MS = 86_400_000;
export const fleetQuery = z.strictObject({
  status: z.enum(DEVICE_STATUSES).optional(),
  group: groupNameSchema.optional(),
  flapping: booleanQuery,
  maintenance: booleanQuery,
  q: z.string().trim().max(100).optional(),
  /** Names first (default), or the slowest links first. */
  sort: z.enum(['name', 'link']).default('name'),
  /** The previous page's `nextAfter`. */
  after: z.string().max(120).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});
export const historyQuery = z.strictObject({ range: z.enum(['hour', 'day']).default('hour') });

// The charting library, from the installed package (never a CDN); the event client, bundled from its
// package for the browser (as `window.Rollcall`) at its first request.
const resolvePackage = (file: string) => createRequire(import.meta.url).resolve(file);
const fromPackage = (file: string) => {
  let body: string | undefined;
  return async () => (body ??= readFileSync(resolvePackage(file), 'utf8'));
};
let clientBundle: Promise<string> | undefined;
const eventClientForBrowsers = () =>
  (clientBundle ??= build({
    entryPoints: [resolvePackage('@rollcall/client')],
    bundle: true,
    write: false,
    format: 'iife',
    globalName: 'Rollcall',
    target: 'es2022',
    minify: true,
  }).then(
    (r) => r.outputFiles[0]!.text,
    (err: unknown) => {
      clientBundle = undefined;
      throw err;
    },
  ));
const ASSETS: Record<string, { type: string; body: () => Promise<string> }> = {
  'uplot.js': { type: 'application/javascript', body: fromPackage('uplot/dist/uPlot.iife.min.js') },
  'uplot.css': { type: 'text/css', body: fromPackage('uplot/dist/uPlot.min.css') },
  'rollcall-client.js': { type: 'application/javascript', body: eventClientForBrowsers },
};

/**
 * The fleet page (`/admin`), the JSON it refreshes from every round (`/admin/fleet.json`: one page
 * of devices with their last 24 h), the history its charts draw (`/admin/history.json`) and the
 * charting library it loads, served from the package.
 */
export function fleetRoutes(deps: {
  queries: Pick<
    ApiOperations['queries'],
    'fleetSummary' | 'fleetPage' | 'lastEventNumber' | 'connectedOverTime' | 'detectionDelays'
  >;
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
    ctx.set({ 'Cache-Control': 'no-store', 'Content-Security-Policy': FLEET_CSP });
    ctx.body = FLEET_HTML;
  });
  router.get('/admin/assets/:file', deps.pageAuth, async (ctx) => {
    const asset = Object.hasOwn(ASSETS, ctx.params.file ?? '') ? ASSETS[ctx.params.file!] : undefined;
    if (!asset) throw new AppError(404, 'NOT_FOUND', 'no such asset');
    ctx.body = await asset.body();
    ctx.type = asset.type;
    ctx.set('Cache-Control', 'private, max-age=3600');
  });
  router.get('/admin/fleet.json', deps.pageAuth, async (ctx) => {
    const { after, sort, limit, q: search, ...filter } = parseInput(fleetQuery, ctx.query);
    const now = Date.now();
    const [summary, page, intervalSeconds, lastEventSeq] = await Promise.all([
      deps.queries.fleetSummary(),
      deps.queries.fleetPage(
        { ...filter, search },
        { sort, after: after === undefined ? undefined : readCursor(sort, after), limit, sinceMs: DAY_MS },
      ),
      deps.intervalSeconds(),
      deps.queries.lastEventNumber('client'),
    ]);
    const heard = await deps.lastHeardAt(page.devices.map((d) => d.id));
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      generatedAt: new Date(now).toISOString(),
      intervalSeconds,
      /** The number of the last client event: where the page's live events start. */
      lastEventSeq,
      ...summary,
      nextAfter: page.more ? writeCursor(sort, page.devices.at(-1)!) : null,
      devices: page.devices.map((d) => presentDevice(d, heard.get(d.id), now, deps.sharedBus)),
    };
  });
  router.get('/admin/history.json', deps.pageAuth, async (ctx) => {
    const { range } = parseInput(historyQuery, ctx.query);
    const to = new Date();
    const from = new Date(to.getTime() - (range === 'hour' ? 3_600_000 : DAY_MS));
    const [series, detection] = await Promise.all([
      deps.queries.connectedOverTime(from, to, range === 'hour' ? 61 : 97),
      deps.queries.detectionDelays(new Date(to.getTime() - DAY_MS), DETECTION_BUCKETS),
    ]);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { range, from: from.toISOString(), to: to.toISOString(), ...series, detection };
  });
  return router;
}

/** A device as the fleet page shows it; `heardAt` is when a gateway last heard it (epoch ms), if known. */
function presentDevice(d: FleetRow, heardAt: number | undefined, now: number, sharedBus: boolean) {
  const last = Math.max(heardAt ?? 0, d.lastHeartbeatAt?.getTime() ?? 0);
  const day = uptime(d.sessions.map(toSpan), {
    from: now - DAY_MS,
    to: now,
    now,
    createdAt: d.createdAt.getTime(),
    deletedAt: null,
  });
  return {
    id: d.id,
    name: d.name,
    status: d.status,
    group: d.group,
    lastHeartbeatAt: last > 0 ? new Date(last).toISOString() : null,
    sessionStartedAt: d.status === 'CONNECTED' ? (d.connectedAt?.toISOString() ?? null) : null,
    usesSharedBus: sharedBus && d.heardOnBus === 'shared',
    tokenExposed: d.tokenExposed,
    maintenanceUntil: d.maintenanceUntil?.toISOString() ?? null,
    flappingSince: d.flappingSince?.toISOString() ?? null,
    busUnstableSince: d.busUnstableSince?.toISOString() ?? null,
    link: d.linkP95Ms === null ? null : { p95Ms: shownMs(d.linkP95Ms), state: d.linkState },
    uptimePercent24h: day.connectedPercent,
    createdAt: d.createdAt.toISOString(),
    sessions24h: d.sessions.map((s) => ({
      startedAt: s.startedAt.toISOString(),
      endedAt: s.endedAt?.toISOString() ?? null,
      endReason: s.endReason,
    })),
  };
}

/** A page's cursor: the last name, or (by link) the last p95 latency and name, as `p95|name`. */
function writeCursor(sort: 'name' | 'link', last: FleetRow): string {
  return sort === 'name' ? last.name : `${last.linkP95Ms ?? -1}|${last.name}`;
}

function readCursor(sort: 'name' | 'link', after: string): FleetCursor {
  if (sort === 'name') return { name: after };
  const bar = after.indexOf('|');
  const p95Ms = Number(after.slice(0, bar));
  if (bar < 0 || !Number.isFinite(p95Ms))
    throw validationFailed([{ field: 'after', message: 'not a cursor this page gave' }]);
  return { p95Ms, name: after.slice(bar + 1) };
}

const toSpan = (s: FleetSession) => ({
  startedAt: s.startedAt.getTime(),
  endedAt: s.endedAt?.getTime() ?? null,
  endReason: s.endReason,
});
