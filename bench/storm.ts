// The "storm" section of `npm run bench`: a whole fleet opens its sockets at once on the embedded hub
// (a site's network back, a Moth restart, a morning power-on) while the roles run as processes of
// their own, 30 webhooks point at a receiver that never answers beside one healthy receiver, 200
// watchers read the live stream, a listener reads the client channel and robots' tasks are aborted.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { loadConfig } from '../src/config';
import type { Knex } from 'knex';
import type { Db } from '../src/db/knex';
import { writeSettings } from '../src/db/settings';
import { createMantisSimulator, createTgdmSimulator } from '../src/integrations/simulator';
import { MothClient } from '../src/moth/client';
import { createLogger } from '../src/logger';
import { jsonLine, parseLog, percentile, runTs, sleep, type Figure } from './support';

export interface StormContext {
  readonly robots: number;
  readonly dir: string;
  readonly baseEnv: { DATABASE_URL: string; REDIS_URL: string };
  readonly sectionDatabase: (name: string) => Promise<{ db: Db; url: string }>;
  readonly insertDevices: (
    db: Db,
    n: number,
    connected: boolean,
    prefix: string,
  ) => Promise<{ id: string; token: string }[]>;
  readonly busesOf: (db: Db) => Promise<Map<string, string>>;
  readonly report: (f: Figure) => void;
  readonly json: Record<string, unknown>;
}

const INTERVAL_S = 2;
const ADMIN = 'bench-admin-token-0123456789abcdef';
const DEAD_WEBHOOKS = 30;
const WATCHERS = 200;
/** Watchers whose every arrival is timed (the others count what they got). */
const TIMED_WATCHERS = 10;
const TASKS = 50;
/** Rounds watched after the last robot connected, for false disconnects. */
const ROUNDS_AFTER = 6;

const stats = (values: number[]) => ({
  p50: Math.round(percentile(values, 50)),
  p99: Math.round(percentile(values, 99)),
  max: Math.round(values.reduce((m, v) => Math.max(m, v), -Infinity)),
  n: values.length,
});

/** The storm, on a quiet machine, then with every core kept busy by another process. */
export async function storm(ctx: StormContext): Promise<void> {
  const quiet = await stormRun(ctx, false);
  const busy = await stormRun(ctx, true);
  ctx.json.storm = { robots: ctx.robots, intervalSeconds: INTERVAL_S, quiet, busy };
  reportStorm(ctx, quiet, busy);
  await clientChannelCapacity(ctx);
}

type StormResult = Awaited<ReturnType<typeof stormRun>>;

function reportStorm(ctx: StormContext, quiet: StormResult, busy: StormResult) {
  const within = 2 * INTERVAL_S * 1000 + 1000;
  ctx.report({
    name: 'every robot CONNECTED, from its socket opening (max)',
    value: quiet.connectMs.max,
    unit: 'ms',
    target: `<= ${within} (2 intervals + 1 s)`,
    met: quiet.connectMs.max <= within && quiet.connected === ctx.robots,
    note: `p50 ${quiet.connectMs.p50}, p99 ${quiet.connectMs.p99}; all ${quiet.allConnectedMs} ms after the last socket opened; ${quiet.connectsPerSecond}/s`,
  });
  const latency = (label: string, s: ReturnType<typeof stats>, targetMs: number | null) =>
    ctx.report({
      name: `  commit -> ${label} (p99)`,
      value: s.p99,
      unit: 'ms',
      target: targetMs === null ? '(reported)' : `< ${targetMs}`,
      met: targetMs === null ? null : s.p99 < targetMs && s.n > 0,
      note: `p50 ${s.p50}, max ${s.max}, ${s.n} events`,
    });
  latency('GET /events', quiet.feed, 1000);
  latency('SSE watcher', quiet.sse, 1000);
  latency('Moth listener', quiet.moth, null);
  latency('healthy webhook', quiet.webhook, 2000);
  latency('  its delivery recorded by the worker', quiet.webhookRecorded, null);
  latency('  its delivery row written (fan-out)', quiet.fanOutMs, null);
  latency("robot's TASK_ABORTED", quiet.aborted, 1000);
  ctx.report({
    name: '  events never obtainable',
    value: quiet.neverNumbered,
    unit: '',
    target: '0',
    met: quiet.neverNumbered === 0,
  });
  ctx.report({
    name: '  events the Moth listener missed, all in the feed',
    value: quiet.mothMissed,
    unit: '',
    target: '(reported)',
    met: quiet.mothMissedNotInFeed === 0 ? null : false,
    note: `${quiet.mothMissedNotInFeed} not in the feed; client channel lag max ${quiet.clientLagMs} ms`,
  });
  ctx.report({
    name: '  SSE watchers cut off or short',
    value: quiet.watchersShort,
    unit: '',
    target: '(reported)',
    met: null,
  });
  for (const [label, r] of [
    ['quiet machine', quiet],
    ['every core busy', busy],
  ] as const)
    ctx.report({
      name: `answering robots disconnected, ${label}`,
      value: r.falseDisconnects,
      unit: '',
      target: '0',
      met: r.falseDisconnects === 0 && r.connected === ctx.robots,
      note: `connected ${r.connected}/${ctx.robots}; all ${r.allConnectedMs} ms after the last socket; rounds voided by a gateway behind: ${r.selfSuspicions} suspicions`,
    });
}

/** One storm: the fleet opens its sockets at once; what every reader saw, and when. */
async function stormRun(ctx: StormContext, busyCores: boolean) {
  process.stdout.write(
    `\nstorm (${ctx.robots.toLocaleString('en')} robots opening their sockets at once, interval ${INTERVAL_S} s, max misses 2; ${DEAD_WEBHOOKS} dead webhooks + 1 healthy; ${WATCHERS} SSE watchers${busyCores ? '; a busy process on every core' : ''})\n`,
  );
  const { db, url } = await ctx.sectionDatabase(`bench_storm_${busyCores ? 'busy' : 'quiet'}`);
  await writeSettings(db, {
    'device.healthcheckIntervalSeconds': INTERVAL_S,
    'device.healthcheckMaxConsecutiveMisses': 2,
    'recording.automatic': true,
  });
  const devices = await ctx.insertDevices(db, ctx.robots, false, 'storm');
  const buses = await ctx.busesOf(db);
  const hub = runTs('bench/hub.ts', {});
  const mothUrl = await hub.waitLine((l) => l.startsWith('ws://'));
  const tgdm = createTgdmSimulator();
  const mantis = createMantisSimulator();
  const env = {
    ...ctx.baseEnv,
    DATABASE_URL: url,
    MOTH_URL: mothUrl,
    TGDM_URL: await tgdm.start(),
    MANTIS_URL: await mantis.start(),
    MOTH_SHARED_BUS: 'false',
    QUEUE_PREFIX: busyCores ? 'stb' : 'stq',
    ADMIN_TOKEN: ADMIN,
    OPS_PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    // The bench's receivers run on this machine.
    WEBHOOK_ALLOW_HOSTS: '127.0.0.1',
  };
  const config = loadConfig({ ...env, LOG_LEVEL: 'silent' });
  const worker = runTs('workers/worker.ts', env);
  const gateway = runTs('workers/gateway.ts', env);
  const web = runTs('workers/web.ts', { ...env, PORT: '0' });
  const port = (parseLog(await web.waitLine(jsonLine('web listening'), 60_000)) as { port: number }).port;
  const gatewayOps = (
    parseLog(await gateway.waitLine(jsonLine('gateway started'), 120_000)) as { opsPort: number }
  ).opsPort;
  await worker.waitLine(jsonLine('worker started'), 60_000);
  const api = `http://127.0.0.1:${port}`;
  const call = async (method: string, path: string, body?: unknown, token = ADMIN) => {
    const res = await fetch(`${api}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.status === 204 ? {} : ((await res.json()) as Record<string, unknown>);
  };

  const healthy = await healthyReceiver();
  const dead = await deadReceiver();
  const events = ['DEVICE_CONNECTED', 'DEVICE_DELETED'];
  for (let i = 0; i < DEAD_WEBHOOKS; i++) await call('POST', '/webhooks', { url: dead.url, events });
  // The healthy receiver is one built for the fleet's news: 64 deliveries at once (docs/webhooks.md).
  await call('POST', '/webhooks', { url: healthy.url, events, concurrency: 64 });
  const [spare] = await ctx.insertDevices(db, 1, false, 'storm-spare');
  await webhooksInService(() => call('DELETE', `/devices/${spare!.id}`), healthy);
  const tasks: { id: string; deviceId: string; token: string }[] = [];
  for (const d of devices.slice(0, TASKS)) {
    const task = await call('POST', `/devices/${d.id}/tasks`, { action: 'PATROL' });
    tasks.push({ id: task.id as string, deviceId: d.id, token: d.token });
  }
  const listener = mothListener(`${mothUrl}${config.channels.clientEvents}`);
  const watchers = await sseWatchers(
    `${api}/events/stream?after=0`,
    join(ctx.dir, `storm-watchers-${busyCores ? 'busy' : 'quiet'}.json`),
  );
  const hogs: ChildProcess[] = busyCores
    ? cpus().map(() => spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }))
    : [];
  const fleetFile = join(ctx.dir, `storm-fleet-${busyCores ? 'busy' : 'quiet'}.json`);
  writeFileSync(
    fleetFile,
    JSON.stringify(
      devices.map((d) => ({ id: d.id, token: d.token, path: config.channels.deviceBus(buses.get(d.id)!) })),
    ),
  );
  const stormStart = new Date();
  try {
    const robots = runTs('bench/robots.ts', {
      FLEET_FILE: fleetFile,
      MOTH_URL: mothUrl,
      ANSWER_WITHIN_MS: '10',
      AT_ONCE: '1',
    });
    const opened = (
      JSON.parse(await robots.waitLine((l) => l.startsWith('{"opened"'), 300_000)) as {
        opened: Record<string, number>;
      }
    ).opened;
    const lastOpened = Object.values(opened).reduce((m, v) => Math.max(m, v), 0);
    // Tasks aborted by their robots a second into the storm: each TASK_ABORTED goes to its robot.
    await sleep(1000);
    await Promise.all(tasks.map((t) => call('POST', `/tasks/${t.id}/abort`, {}, t.token)));
    const count = async (q: Knex.QueryBuilder) => Number((await q.count<{ n: string }[]>('* as n'))[0]!.n);
    const connected = () => count(db('devices').where({ status: 'CONNECTED' }));
    while ((await connected()) < ctx.robots && Date.now() - lastOpened < 180_000) await sleep(200);
    const allConnectedAt = Date.now();
    await sleep(ROUNDS_AFTER * INTERVAL_S * 1000);
    // Everything numbered, on Moth and at the healthy receiver (bounded: what is missing is counted).
    const settled = async () =>
      (await count(db('outbox').whereNull('published_at'))) === 0 &&
      healthy.arrived().size >= (await count(db('outbox').where({ type: 'DEVICE_CONNECTED' })));
    for (let t = Date.now(); !(await settled()) && Date.now() - t < 60_000;) await sleep(500);
    await sleep(1000);
    for (const h of hogs) h.kill('SIGKILL');
    const abortedAt = (
      JSON.parse([...robots.lines].reverse().find((l) => l.startsWith('{"sent"'))!) as {
        aborted: Record<string, number>;
      }
    ).aborted;
    const result = await gather({
      db,
      robots: ctx.robots,
      opened,
      lastOpened,
      allConnectedAt,
      stormStart,
      listener,
      watchers: await watchers.results(),
      healthy,
      abortedAt,
      selfSuspicions: await metricOf(gatewayOps, 'rollcall_gateway_self_suspicions_total'),
    });
    await robots.stop();
    return result;
  } finally {
    for (const h of hogs) h.kill('SIGKILL');
    listener.close();
    await watchers.stop();
    await Promise.all([web.stop(), gateway.stop(), worker.stop()]);
    await hub.stop();
    await healthy.close();
    await dead.close();
    await tgdm.stop();
    await mantis.stop();
    await db.destroy();
  }
}

async function gather(r: {
  db: Db;
  robots: number;
  opened: Record<string, number>;
  lastOpened: number;
  allConnectedAt: number;
  stormStart: Date;
  listener: ReturnType<typeof mothListener>;
  watchers: WatcherResults;
  healthy: Awaited<ReturnType<typeof healthyReceiver>>;
  abortedAt: Record<string, number>;
  selfSuspicions: number;
}) {
  const { db } = r;
  const { rows: firstSession } = await db.raw<{ rows: { device_id: string; at: Date }[] }>(
    'SELECT device_id, min(started_at) AS at FROM connection_sessions GROUP BY device_id',
  );
  const connectMs = firstSession
    .filter((s) => r.opened[s.device_id] !== undefined)
    .map((s) => +s.at - r.opened[s.device_id]!);
  const firstOpened = Object.values(r.opened).reduce((m, v) => Math.min(m, v), Infinity);
  const lastConnected = firstSession.reduce((m, s) => Math.max(m, +s.at), 0);
  // What was committed in the last two seconds may still be on its way: it is left out.
  const events = await db('outbox')
    .where('created_at', '>=', r.stormStart)
    .where('created_at', '<', new Date(Date.now() - 2000))
    .select<
      {
        event_id: string;
        channel: string;
        type: string;
        seq: string | null;
        body: { taskId?: string };
        created_at: Date;
        numbered_at: Date | null;
        published_at: Date | null;
      }[]
    >('event_id', 'channel', 'type', 'seq', 'body', 'created_at', 'numbered_at', 'published_at');
  const client = events.filter((e) => e.channel === 'client');
  const since = (e: { created_at: Date }, at: number | undefined) =>
    at === undefined ? [] : [at - +e.created_at];
  const timed = r.watchers.timed;
  const mothMissed = client.filter((e) => !r.listener.arrivals.has(e.event_id));
  return {
    connected: Number(
      (await db('devices').where({ status: 'CONNECTED' }).count<{ n: string }[]>('* as n'))[0]!.n,
    ),
    connectMs: stats(connectMs),
    allConnectedMs: r.allConnectedAt - r.lastOpened,
    connectsPerSecond: Math.round((r.robots / Math.max(1, lastConnected - firstOpened)) * 1000),
    feed: stats(client.filter((e) => e.numbered_at).map((e) => +e.numbered_at! - +e.created_at)),
    sse: stats(client.flatMap((e) => timed.flatMap((w) => since(e, w.get(Number(e.seq)))))),
    moth: stats(client.flatMap((e) => since(e, r.listener.arrivals.get(e.event_id)))),
    // The same, as the worker saw it: when the delivery was recorded as taken, and when written.
    webhookRecorded: stats(await sinceCommit(db, 'finished_at', r.stormStart)),
    fanOutMs: stats(await sinceCommit(db, 'created_at', r.stormStart)),
    webhook: stats(
      client
        .filter((e) => e.type === 'DEVICE_CONNECTED')
        .flatMap((e) => since(e, r.healthy.arrived().get(e.event_id))),
    ),
    aborted: stats(
      events
        .filter((e) => e.channel === 'device' && e.type === 'TASK_ABORTED')
        .flatMap((e) => since(e, r.abortedAt[e.body.taskId ?? ''])),
    ),
    neverNumbered: events.filter((e) => e.seq === null).length,
    mothMissed: mothMissed.length,
    mothMissedNotInFeed: mothMissed.filter((e) => e.seq === null).length,
    clientLagMs: Math.max(
      0,
      ...client.filter((e) => e.published_at).map((e) => +e.published_at! - +e.created_at),
    ),
    watchersShort: r.watchers.counts.filter((n) => n < client.length).length,
    falseDisconnects: events.filter((e) => e.type === 'DEVICE_DISCONNECTED').length,
    selfSuspicions: r.selfSuspicions,
  };
}

/** For each delivered webhook delivery of the storm: its `column` (a time) less its event's commit, in ms. */
async function sinceCommit(db: Db, column: 'finished_at' | 'created_at', since: Date): Promise<number[]> {
  const { rows } = await db.raw<{ rows: { ms: number }[] }>(
    `SELECT extract(epoch FROM d.?? - o.created_at) * 1000 AS ms
       FROM webhook_deliveries d JOIN outbox o ON o.event_id = d.event_id
      WHERE d.status = 'DELIVERED' AND o.created_at >= ?`,
    [column, since],
  );
  return rows.map((x) => Number(x.ms));
}

/** A listener on the client channel: when each event (by id) first arrived. */
function mothListener(url: string) {
  const arrivals = new Map<string, number>();
  let ws: WebSocket | undefined;
  let closed = false;
  const join = () => {
    if (closed) return;
    ws = new WebSocket(url);
    ws.on('message', (d: Buffer) => {
      const id = /"eventId":"([^"]+)"/.exec(d.toString())?.[1];
      if (id && !arrivals.has(id)) arrivals.set(id, Date.now());
    });
    ws.on('error', () => {});
    ws.on('close', () => setTimeout(join, 200));
  };
  join();
  return {
    arrivals,
    close() {
      closed = true;
      ws?.terminate();
    },
  };
}

interface WatcherResults {
  /** For each timed watcher: when each event (by seq) arrived. */
  readonly timed: Map<number, number>[];
  /** How many events each watcher got. */
  readonly counts: number[];
}

/** The SSE watchers (bench/watchers.ts, a process of their own); their results once stopped. */
async function sseWatchers(url: string, out: string) {
  const child = runTs('bench/watchers.ts', {
    URL: url,
    TOKEN: ADMIN,
    WATCHERS: String(WATCHERS),
    TIMED: String(TIMED_WATCHERS),
    OUT: out,
  });
  await child.waitLine((l) => l === 'ready', 60_000);
  let stopped = false;
  const stop = async () => {
    if (!stopped) await child.stop();
    stopped = true;
  };
  return {
    stop,
    async results(): Promise<WatcherResults> {
      await stop();
      const { timed, counts } = JSON.parse(readFileSync(out, 'utf8')) as {
        timed: [number, number][][];
        counts: number[];
      };
      return { timed: timed.map((pairs) => new Map(pairs)), counts };
    },
  };
}

/** A receiver that accepts each request, reads nothing and never answers. */
async function deadReceiver() {
  const server: Server = createServer(() => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/**
 * Webhooks in service before the storm, as a fleet's are: each gets one event (a device deleted); the
 * healthy receiver answers it, the dead ones' first attempt times out (5 s).
 */
async function webhooksInService(
  deleteSpare: () => Promise<unknown>,
  healthy: { arrived(): Map<string, number> },
) {
  await deleteSpare();
  const deadline = Date.now() + 30_000;
  while (healthy.arrived().size === 0 && Date.now() < deadline) await sleep(100);
  if (healthy.arrived().size === 0) throw new Error('the healthy receiver never heard the warm-up event');
  await sleep(6000);
}

/** The healthy receiver (bench/receiver.ts, a process of its own): when each event arrived there. */
async function healthyReceiver() {
  const child = runTs('bench/receiver.ts', {});
  const url = await child.waitLine((l) => l.startsWith('http://'));
  const arrived = new Map<string, number>();
  let read = 0;
  return {
    url,
    /** What arrived so far, from the lines it printed. */
    arrived(): Map<string, number> {
      for (; read < child.lines.length; read++) {
        const line = child.lines[read]!;
        if (!line.startsWith('{"arrived"')) continue;
        const batch = (JSON.parse(line) as { arrived: Record<string, number> }).arrived;
        for (const [id, at] of Object.entries(batch)) if (!arrived.has(id)) arrived.set(id, at);
      }
      return arrived;
    },
    close: () => child.stop(),
  };
}

async function metricOf(opsPort: number, name: string): Promise<number> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
    return text
      .split('\n')
      .filter((l) => l.startsWith(name))
      .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
  } catch {
    return NaN;
  }
}

/**
 * What the client channel carries without loss on the embedded hub (as Moth Lite measured: one track
 * toward one reader, lossless up to about 250 frames/s): 1,000 frames at each gap, one reader.
 */
async function clientChannelCapacity(ctx: StormContext) {
  process.stdout.write('\nclient channel on the embedded hub (1,000 frames from one sender to one reader)\n');
  const hub = runTs('bench/hub.ts', {});
  const mothUrl = await hub.waitLine((l) => l.startsWith('ws://'));
  const rows: { gapMs: number; perSecond: number; deliveredPercent: number }[] = [];
  try {
    for (const gapMs of [1, 2, 3, 4, 5]) {
      const path = `/pang/ws/meb?channel=instant&name=capacity-${gapMs}&source=base&track=base`;
      let got = 0;
      const reader = new WebSocket(`${mothUrl}${path}`);
      reader.on('message', () => got++);
      await new Promise((r) => reader.once('open', r));
      const sender = new MothClient({
        url: mothUrl,
        path,
        frameGapMs: gapMs,
        pingSeconds: 10,
        logger: createLogger('silent'),
      });
      sender.start();
      while (!sender.isOpen) await sleep(10);
      const t = Date.now();
      for (let i = 0; i < 1000; i++)
        await sender.send({ type: 'DEVICE_CONNECTED', i, padding: 'x'.repeat(300) });
      const seconds = (Date.now() - t) / 1000;
      await sleep(500);
      rows.push({ gapMs, perSecond: Math.round(1000 / seconds), deliveredPercent: got / 10 });
      await sender.stop();
      reader.terminate();
    }
  } finally {
    await hub.stop();
  }
  ctx.json.clientChannelCapacity = rows;
  for (const r of rows)
    ctx.report({
      name: `  a frame every ${r.gapMs} ms (${r.perSecond}/s): delivered`,
      value: r.deliveredPercent,
      unit: '%',
      target: r.gapMs === loadConfig({}).MOTH_FRAME_GAP_MS ? '100 (the default gap)' : '(reported)',
      met: r.gapMs === loadConfig({}).MOTH_FRAME_GAP_MS ? r.deliveredPercent === 100 : null,
    });
}
