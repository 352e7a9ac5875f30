import { parseProxyAddresses } from './domain/addresses';
import { createDestinationPolicy } from './domain/destinations';
import { z } from 'zod';
import { parseSecretsKey } from './domain/sealed';
import { operatorTokens } from './domain/operators';
import { isRegisteredChannelId } from './domain/channel-ids';

const optionalUrl = z
  .string()
  .trim()
  .transform((v) => (v === '' ? undefined : v))
  .pipe(z.url().optional())
  .optional();
const optionalSecret = z
  .string()
  .transform((v) => (v === '' ? undefined : v))
  .optional();
const port = z.coerce.number().int().min(0).max(65535);

/** A setting that `parse` must accept (its error, naming the setting, refuses the configuration). */
const parsedBy = (parse: (value: string) => unknown) => (value: string, ctx: z.RefinementCtx) => {
  try {
    parse(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
};

export const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  HOST: z.string().default('0.0.0.0'),
  PORT: port.default(3000),
  DATA_DIR: z.string().min(1).default('.data'),
  DATABASE_URL: optionalUrl,
  REDIS_URL: optionalUrl,
  /** REDIS_URL names a node of a Redis Cluster (QUEUE_PREFIX must then be a hash tag, e.g. `{rollcall}`). */
  REDIS_CLUSTER: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_{}-]+$/, 'letters, digits, _ - { } only')
    .default('rollcall'),
  /** Guessable when short: at least 32 characters (`npm start` generates one when unset). */
  ADMIN_TOKEN: optionalSecret.pipe(z.string().min(32, 'at least 32 characters').optional()),
  /**
   * More operator tokens, one per person or tool so the audit log says who: `label=token` pairs,
   * comma-separated (each token at least 32 characters). ADMIN_TOKEN is the one labelled `admin`.
   */
  ADMIN_TOKENS: z
    .string()
    .default('')
    .superRefine(parsedBy((v) => operatorTokens(undefined, v))),
  /** The first registration secret: at least 16 characters (`npm start` generates one when unset). */
  DEVICE_SECRET_KEY: optionalSecret.pipe(z.string().min(16, 'at least 16 characters').optional()),
  /**
   * Seals event signing keys and webhook secrets at rest (AES-256-GCM): 32 bytes in base64
   * (`openssl rand -base64 32`); `npm start` generates one and keeps it in DATA_DIR.
   */
  SECRETS_KEY: optionalSecret.pipe(
    z
      .string()
      .superRefine(parsedBy((v) => parseSecretsKey(v)))
      .optional(),
  ),
  /** HTTPS for the web role when both are set (registration carries a secret). */
  TLS_CERT_FILE: z.string().optional(),
  TLS_KEY_FILE: z.string().optional(),
  /** Port of /metrics, /healthz and /readyz for the gateway and worker roles (0: any free port). */
  OPS_PORT: port.default(9464),
  TRUST_PROXY: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
  /**
   * With TRUST_PROXY: the proxies' own addresses (addresses and CIDRs, comma-separated); X-Forwarded-*
   * from any other connection is ignored (default: a proxy on this host).
   */
  TRUST_PROXY_ADDRESSES: z.string().default('127.0.0.1,::1').superRefine(parsedBy(parseProxyAddresses)),
  /** With TRUST_PROXY: how many proxies in front append to X-Forwarded-For (the client is that many from the right). */
  TRUST_PROXY_HOPS: z.coerce.number().int().min(1).max(10).default(1),
  MOTH_URL: optionalUrl,
  MOTH_PORT: port.default(8276),
  /** The key of both Moth channels, for deployments of earlier versions (each key below wins over it). */
  MOTH_KEY: optionalSecret,
  /** The device-management channel's key (every device bus): robots get it in their bus path. */
  MOTH_DEVICE_KEY: optionalSecret,
  /** The client-events channel's key: for the clients that read events, never given to robots. */
  MOTH_CLIENT_KEY: optionalSecret,
  /**
   * The two channels: a registered channel's 20-character id (created through Moth's management API
   * with its key: nobody can take it or change its key) or an instant channel's name (created by its
   * first joiner, who sets its key: see docs/security.md).
   */
  MOTH_DEVICE_CHANNEL: z.string().min(1).default('device-management'),
  MOTH_CLIENT_CHANNEL: z.string().min(1).default('client-events'),
  /**
   * The fleet-wide device bus of earlier versions (`track=base` on MOTH_DEVICE_CHANNEL), kept during
   * the migration to one bus per device: robots not yet reconfigured are still heard there.
   */
  MOTH_SHARED_BUS: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
  /** HEALTHCHECKs of one round go out across this spread, so a gateway never bursts them. */
  MOTH_HEALTHCHECK_SPREAD_MS: z.coerce.number().int().min(0).max(10_000).default(500),
  /** Each gateway writes the link figures it measured this often (src/gateway/link-reports.ts). */
  LINK_REPORT_SECONDS: z.coerce.number().min(0.5).max(300).default(10),
  /** A robot's link is judged over the last this many rounds it was asked in (src/domain/link.ts). */
  LINK_WINDOW_ROUNDS: z.coerce.number().int().min(10).max(1000).default(60),
  /** Devices fall into this many shards; live gateways divide the shards between them. */
  SHARDS: z.coerce.number().int().min(1).max(4096).default(64),
  MOTH_FRAME_GAP_MS: z.coerce.number().min(0).max(1000).default(5),
  MOTH_PING_SECONDS: z.coerce.number().min(1).max(300).default(10),
  TGDM_URL: optionalUrl,
  MANTIS_URL: optionalUrl,
  /** Base URL of Moth as TGDM and Mantis reach it (recording and analysis input URIs). */
  MOTH_PUBLIC_URL: optionalUrl,
  /** Base URL of Moth as robots reach it, given them at registration (default MOTH_PUBLIC_URL, then MOTH_URL). */
  MOTH_ROBOT_URL: optionalUrl,
  HTTP_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(5000),
  EFFECT_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(12),
  EFFECT_BACKOFF_MS: z.coerce.number().int().min(10).max(600_000).default(1000),
  /** How long a worker holds a job before others may take it as stalled (a crashed worker's jobs). */
  JOB_LOCK_MS: z.coerce.number().int().min(1000).max(600_000).default(30_000),
  SWEEP_INTERVAL_SECONDS: z.coerce.number().int().min(1).max(3600).default(10),
  /** Webhook deliveries: attempts, first backoff (doubling), and how often new events are fanned out. */
  WEBHOOK_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(10),
  WEBHOOK_BACKOFF_MS: z.coerce.number().int().min(10).max(600_000).default(2000),
  WEBHOOK_FANOUT_MS: z.coerce.number().int().min(50).max(60_000).default(250),
  /**
   * Pending deliveries one webhook may have, and events of its types left waiting in the stream when
   * its pump fans out; past that the oldest are skipped (or passed over).
   */
  WEBHOOK_MAX_BACKLOG: z.coerce.number().int().min(10).max(1_000_000).default(10_000),
  /**
   * Where webhooks may reach besides public addresses: hosts, addresses and CIDRs, comma-separated
   * (e.g. `127.0.0.1,10.0.0.0/8,hooks.plant.local`). Loopback, private, link-local (metadata) and
   * other special addresses are refused otherwise.
   */
  WEBHOOK_ALLOW_HOSTS: z.string().default('').superRefine(parsedBy(createDestinationPolicy)),
});

export type Env = z.infer<typeof envSchema>;

/** The validated, frozen configuration every process is built from. */
export interface Config extends Env {
  /** The Moth paths (path + query) of the platform's channels. */
  readonly channels: {
    /** A device's own device-management bus, named by its unguessable bus id. */
    readonly deviceBus: (busId: string) => string;
    /** The same path as its robot joins it: with the channel's key when it has one. */
    readonly deviceBusForRobot: (busId: string) => string;
    /** Moth's base URL as robots reach it. */
    readonly mothForRobots: string | undefined;
    /** Each channel's Moth key (the gateway, first to join, sets it). */
    readonly deviceKey: string | undefined;
    readonly clientKey: string | undefined;
    /** The fleet-wide bus of earlier versions (see MOTH_SHARED_BUS). */
    readonly sharedDeviceBus: string;
    readonly clientEvents: string;
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment once. Throws a ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid environment:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  if (e.REDIS_CLUSTER && !/^\{[^}]+\}$/.test(e.QUEUE_PREFIX)) {
    throw new ConfigError(
      'invalid environment:\n  QUEUE_PREFIX: must be a hash tag such as {rollcall} with REDIS_CLUSTER=true (BullMQ and the fleet-wide keys share a slot)',
    );
  }
  if (Boolean(e.TLS_CERT_FILE) !== Boolean(e.TLS_KEY_FILE)) {
    throw new ConfigError('invalid environment:\n  TLS_CERT_FILE and TLS_KEY_FILE go together');
  }
  const deviceKey = e.MOTH_DEVICE_KEY ?? e.MOTH_KEY;
  return Object.freeze({
    ...e,
    channels: Object.freeze({
      deviceBus: (busId: string) => busChannelPath(e.MOTH_DEVICE_CHANNEL, busId),
      deviceBusForRobot: (busId: string) => busChannelPath(e.MOTH_DEVICE_CHANNEL, busId, deviceKey),
      mothForRobots: e.MOTH_ROBOT_URL ?? e.MOTH_PUBLIC_URL ?? e.MOTH_URL,
      deviceKey,
      clientKey: e.MOTH_CLIENT_KEY ?? e.MOTH_KEY,
      sharedDeviceBus: busChannelPath(e.MOTH_DEVICE_CHANNEL, 'base'),
      clientEvents: busChannelPath(e.MOTH_CLIENT_CHANNEL, 'base'),
    }),
  });
}

/** A channel named by a registered channel's id is joined by it; any other name is an instant channel. */
function busChannelPath(name: string, track: string, key?: string): string {
  const channel: Record<string, string> = isRegisteredChannelId(name)
    ? { channel: name }
    : { channel: 'instant', name };
  const q = new URLSearchParams({ ...channel, source: 'base', track, ...(key ? { key } : {}) });
  return `/pang/ws/meb?${q.toString()}`;
}
