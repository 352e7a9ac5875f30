// The device fleet simulator: `npm run fleet -- --devices N [options]`. Every simulated robot is a
// robot of the robot SDK (`@rollcall/robot`): registered (or its saved credentials reused from
// --tokens), on its own bus (one socket per robot), answering each HEALTHCHECK within --answer-within
// ms, back by itself when Moth drops it. Some devices can be silent, flapping, slow or say goodbye.
// Counts the tokens of other robots any robot could read.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { register, Robot, type Credentials } from '@rollcall/robot';
import { groupNameSchema } from '../src/domain/policy';

const HELP = `usage: npm run fleet -- [options]
  --api URL            rollcall API (default http://localhost:3000)
  --moth URL           Moth base URL (default: the one registration names, else ws://<api host>:8276)
  --secret KEY         registration secret (default $DEVICE_SECRET_KEY)
  --admin-token TOKEN  to show server-side counts (default $ADMIN_TOKEN)
  --devices N          fleet size (default 10)
  --silent K           K devices stop answering after --silent-after seconds (default 0, 10)
  --flapping K         K devices alternate answering and silence every --flap-seconds (default 0, 15)
  --slow K             K devices answer close to the end of each interval (default 0)
  --goodbye K          K devices say GOODBYE (a planned disconnect) after --silent-after seconds
  --latency K:MS       K devices answer each HEALTHCHECK MS later (a slow link)
  --loss K:SHARE       K devices leave that share of rounds unanswered, spread evenly (a lossy
                       link; below 0.5 never two in a row, so never a disconnect)
  --answer-within MS   the others answer each HEALTHCHECK within MS, at random (default 10, as
                       TeamGRIT's robots do: their send loop polls every 10 ms)
  --protocol v1|v2     v1 sends the token in each heartbeat, as deployed robots (default); v2
                       answers with a proof for the round and its nonce (the token never sent)
  --tokens FILE        save registered tokens there, and reuse them when it exists
  --duration S         stop after S seconds (default: until Ctrl-C)
  --groups A,B,...     put the devices in these groups, in turn, at registration (each group's
                       health-check policy and maintenance windows then apply to them)
  --prefix NAME        device name prefix (default fleet-<random>)`;

const { values } = parseArgs({
  options: {
    api: { type: 'string', default: 'http://localhost:3000' },
    moth: { type: 'string' },
    secret: { type: 'string' },
    'admin-token': { type: 'string' },
    devices: { type: 'string', default: '10' },
    silent: { type: 'string', default: '0' },
    'silent-after': { type: 'string', default: '10' },
    flapping: { type: 'string', default: '0' },
    'flap-seconds': { type: 'string', default: '15' },
    slow: { type: 'string', default: '0' },
    goodbye: { type: 'string', default: '0' },
    'answer-within': { type: 'string', default: '10' },
    latency: { type: 'string', default: '0:0' },
    loss: { type: 'string', default: '0:0' },
    protocol: { type: 'string', default: 'v1' },
    tokens: { type: 'string' },
    groups: { type: 'string' },
    duration: { type: 'string' },
    prefix: { type: 'string', default: `fleet-${Math.random().toString(36).slice(2, 7)}` },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(HELP);
  process.exit(0);
}

const count = z.coerce.number().int().min(0).max(100_000);
/** `K:VALUE`: how many devices, and what of. */
const share = (max: number) =>
  z
    .string()
    .regex(/^\d+:\d+(\.\d+)?$/, 'K:VALUE, e.g. 5:300')
    .transform((v) => v.split(':').map(Number))
    .pipe(z.tuple([z.number().int().min(0).max(100_000), z.number().min(0).max(max)]))
    .transform(([devices, of]) => ({ devices, of }));

const opts = z
  .object({
    api: z.url(),
    moth: z.url().optional(),
    secret: z.string().min(1, 'give --secret or set DEVICE_SECRET_KEY').optional(),
    adminToken: z.string().optional(),
    devices: count,
    silent: count,
    silentAfter: z.coerce.number().min(0),
    flapping: count,
    flapSeconds: z.coerce.number().min(1),
    slow: count,
    goodbye: count,
    answerWithinMs: z.coerce.number().min(0).max(3_600_000),
    latency: share(3_600_000),
    loss: share(1),
    protocol: z.enum(['v1', 'v2']),
    tokens: z.string().optional(),
    groups: z
      .string()
      .optional()
      .transform((g) => (g === undefined ? [] : g.split(',')))
      .pipe(z.array(groupNameSchema)),
    duration: z.coerce.number().positive().optional(),
    prefix: z.string().min(1).max(60),
  })
  .refine(
    (o) => o.silent + o.flapping + o.slow + o.goodbye + o.latency.devices + o.loss.devices <= o.devices,
    'silent + flapping + slow + goodbye + latency + loss devices must not exceed devices',
  )
  .safeParse({
    ...values,
    secret: values.secret ?? process.env.DEVICE_SECRET_KEY,
    adminToken: values['admin-token'] ?? process.env.ADMIN_TOKEN,
    silentAfter: values['silent-after'],
    flapSeconds: values['flap-seconds'],
    answerWithinMs: values['answer-within'],
  });
if (!opts.success) {
  console.error(
    `fleet: ${opts.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; ')}\n\n${HELP}`,
  );
  process.exit(2);
}
const o = opts.data;
/** Moth as robots reach it: given, or as the registration names it, or beside the API. */
const mothOf = (d: Credentials) => o.moth ?? d.moth ?? `ws://${new URL(o.api).hostname}:8276`;

type Saved = Credentials & { readonly name: string };
type Kind = 'healthy' | 'silent' | 'flapping' | 'slow' | 'goodbye' | 'latent' | 'lossy';

async function registered(name: string, index: number): Promise<Saved> {
  if (!o.secret) throw new Error('a registration secret is needed: --secret or DEVICE_SECRET_KEY');
  const credentials = await register({
    api: o.api,
    secret: o.secret,
    name,
    tracks: [{ name: 'front', type: 'VIDEO' }],
    actions: ['PATROL'],
    ...(o.groups.length > 0 && { group: o.groups[index % o.groups.length] }),
  });
  return { name, ...credentials };
}

async function loadFleet(): Promise<Saved[]> {
  const saved: Saved[] =
    o.tokens && existsSync(o.tokens) ? (JSON.parse(readFileSync(o.tokens, 'utf8')) as Saved[]) : [];
  const fleet = saved.slice(0, o.devices);
  for (let i = fleet.length; i < o.devices; i += 20) {
    const batch = Array.from(
      { length: Math.min(20, o.devices - i) },
      (_, k) => `${o.prefix}-${String(i + k).padStart(5, '0')}`,
    );
    fleet.push(...(await Promise.all(batch.map((name, k) => registered(name, i + k)))));
    process.stdout.write(`\rregistered ${fleet.length}/${o.devices}`);
  }
  if (o.tokens)
    writeFileSync(o.tokens, JSON.stringify([...fleet, ...saved.slice(fleet.length)], null, 2), {
      mode: 0o600,
    });
  return fleet;
}

async function serverCounts(): Promise<string> {
  if (!o.adminToken) return '';
  try {
    const res = await fetch(`${o.api}/admin/fleet.json?limit=1`, {
      headers: { authorization: `Bearer ${o.adminToken}` },
    });
    if (!res.ok) return ` | server: HTTP ${res.status}`;
    const body = (await res.json()) as {
      counts: { CONNECTED: number; DISCONNECTED: number };
      intervalSeconds: number;
    };
    return ` | server: ${body.counts.CONNECTED} connected, ${body.counts.DISCONNECTED} disconnected`;
  } catch {
    return ' | server: unreachable';
  }
}

async function main() {
  const fleet = await loadFleet();
  const special: [Kind, number][] = [
    ['silent', o.silent],
    ['flapping', o.flapping],
    ['slow', o.slow],
    ['goodbye', o.goodbye],
    ['latent', o.latency.devices],
    ['lossy', o.loss.devices],
  ];
  const kinds: Kind[] = special.flatMap(([kind, n]) => Array<Kind>(n).fill(kind));
  while (kinds.length < fleet.length) kinds.push('healthy');
  let interval = 5;
  const heard = fleet.map(() => 0);
  let foreign = 0;
  const devices = fleet.map((d, i) => {
    const kind = kinds[i]!;
    const delay =
      kind === 'slow'
        ? () => interval * 1000 * (0.85 + Math.random() * 0.3)
        : kind === 'latent'
          ? () => o.latency.of + Math.random() * o.answerWithinMs
          : () => Math.random() * o.answerWithinMs;
    const robot = new Robot({
      api: o.api,
      moth: mothOf(d),
      credentials: d,
      protocol: o.protocol,
      answerDelayMs: delay,
    });
    let lost = Math.random();
    robot.on('healthcheck', () => {
      heard[i]!++;
      if (kind !== 'lossy') return;
      lost += o.loss.of;
      robot.muted = lost >= 1;
      if (robot.muted) lost -= 1;
    });
    robot.on('frame', (m) => {
      if (m.type === 'HEALTHCHECK' && typeof m.intervalSeconds === 'number') interval = m.intervalSeconds;
      if (typeof m.token === 'string' && m.token !== d.token) foreign++;
    });
    return robot;
  });
  // One socket per robot, each on the bus its registration named, as deployed robots join.
  for (let i = 0; i < devices.length; i += 200)
    await Promise.all(
      devices
        .slice(i, i + 200)
        .map((d) => new Promise<void>((resolve) => (d.once('open', resolve), d.start()))),
    );
  process.stdout.write(
    `\r${devices.length} devices joined their own buses on ${fleet[0] ? mothOf(fleet[0]) : 'Moth'}\n`,
  );

  const started = Date.now();
  const timers: NodeJS.Timeout[] = [];
  if (o.silent > 0) {
    timers.push(
      setTimeout(
        () => devices.forEach((d, i) => kinds[i] === 'silent' && (d.muted = true)),
        o.silentAfter * 1000,
      ),
    );
  }
  if (o.goodbye > 0) {
    timers.push(
      setTimeout(
        () => devices.forEach((d, i) => kinds[i] === 'goodbye' && void d.goodbye()),
        o.silentAfter * 1000,
      ),
    );
  }
  if (o.flapping > 0) {
    timers.push(
      setInterval(
        () => devices.forEach((d, i) => kinds[i] === 'flapping' && (d.muted = !d.muted)),
        o.flapSeconds * 1000,
      ),
    );
  }
  const line = async () => {
    const answering = devices.filter((d) => !d.muted && d.open).length;
    const beats = devices.reduce((n, d) => n + d.heartbeatsSent, 0);
    const secs = Math.round((Date.now() - started) / 1000);
    return `${secs}s | devices ${devices.length} | answering ${answering} | silent ${devices.length - answering} | rounds ${Math.max(0, ...heard)} | heartbeats ${beats} | foreign tokens seen ${foreign}${await serverCounts()}`;
  };
  const display = setInterval(
    () => void line().then((l) => process.stdout.write(`\r${l.padEnd(120)}`)),
    1000,
  );

  const finish = async () => {
    clearInterval(display);
    timers.forEach((t) => clearTimeout(t));
    const summary = await line();
    await Promise.all(devices.map((d) => d.stop()));
    const byKind = (k: Kind) => kinds.filter((x) => x === k).length;
    process.stdout.write(
      `\n\nsummary\n  ${summary}\n  healthy ${byKind('healthy')}, silent ${byKind('silent')}, flapping ${byKind('flapping')}, slow ${byKind('slow')}, goodbye ${byKind('goodbye')}, latency +${o.latency.of} ms ${byKind('latent')}, loss ${o.loss.of} ${byKind('lossy')}\n` +
        `  heartbeats per device: min ${Math.min(...devices.map((d) => d.heartbeatsSent))}, max ${Math.max(...devices.map((d) => d.heartbeatsSent))}\n`,
    );
    process.exit(0);
  };
  process.once('SIGINT', () => void finish());
  process.once('SIGTERM', () => void finish());
  if (o.duration) setTimeout(() => void finish(), o.duration * 1000);
}

main().catch((err: unknown) => {
  console.error(`\nfleet: ${(err as Error).message}`);
  process.exit(1);
});
