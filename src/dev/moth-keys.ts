import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { isRegisteredChannelId, newChannelId } from '../domain/channel-ids';

const stored = z.object({ MOTH_DEVICE_KEY: z.string().min(16), MOTH_CLIENT_KEY: z.string().min(16) });

/**
 * What `npm start` generates once and keeps in DATA_DIR (`name`, JSON, readable by its owner only):
 * what is stored there when it reads as `schema`, else `generate()`, stored for the next start.
 */
function keptInDataDir<T>(dataDir: string, name: string, schema: z.ZodType<T>, generate: () => T): T {
  const file = join(resolve(dataDir), name);
  const kept = existsSync(file) ? schema.safeParse(JSON.parse(readFileSync(file, 'utf8'))).data : undefined;
  if (kept) return kept;
  const fresh = generate();
  mkdirSync(resolve(dataDir), { recursive: true });
  writeFileSync(file, JSON.stringify(fresh), { mode: 0o600 });
  return fresh;
}

/**
 * `npm start`'s Moth channel keys, one per channel: the ones given, else the ones generated on the
 * first start and kept in DATA_DIR (robots hold the device key in their bus path, so it must survive
 * restarts). With only MOTH_KEY given (earlier versions), nothing is generated: it keys both.
 */
export function mothChannelKeys(env: NodeJS.ProcessEnv, dataDir: string): Record<string, string> {
  const given = {
    MOTH_DEVICE_KEY: env.MOTH_DEVICE_KEY || undefined,
    MOTH_CLIENT_KEY: env.MOTH_CLIENT_KEY || undefined,
  };
  if (env.MOTH_KEY || (given.MOTH_DEVICE_KEY && given.MOTH_CLIENT_KEY)) return {};
  const keys = keptInDataDir(dataDir, 'moth-keys.json', stored, () => ({
    MOTH_DEVICE_KEY: randomBytes(24).toString('base64url'),
    MOTH_CLIENT_KEY: randomBytes(24).toString('base64url'),
  }));
  return {
    MOTH_DEVICE_KEY: given.MOTH_DEVICE_KEY ?? keys.MOTH_DEVICE_KEY,
    MOTH_CLIENT_KEY: given.MOTH_CLIENT_KEY ?? keys.MOTH_CLIENT_KEY,
  };
}

const channelId = z.string().refine(isRegisteredChannelId);
const storedIds = z.object({ MOTH_DEVICE_CHANNEL: channelId, MOTH_CLIENT_CHANNEL: channelId });

/**
 * `npm start`'s channels on the embedded hub: registered channels (see docs/security.md),
 * their ids generated on the first start and kept in DATA_DIR (robots hold the device channel's in
 * their bus path). A channel given in the environment, or a Moth of one's own (MOTH_URL), is left as
 * configured: on a real Moth the channels are registered through its management API.
 */
export function embeddedMothChannels(env: NodeJS.ProcessEnv, dataDir: string): Record<string, string> {
  if (env.MOTH_URL) return {};
  const ids = keptInDataDir(dataDir, 'moth-channels.json', storedIds, () => ({
    MOTH_DEVICE_CHANNEL: newChannelId(),
    MOTH_CLIENT_CHANNEL: newChannelId(),
  }));
  return {
    MOTH_DEVICE_CHANNEL: env.MOTH_DEVICE_CHANNEL || ids.MOTH_DEVICE_CHANNEL,
    MOTH_CLIENT_CHANNEL: env.MOTH_CLIENT_CHANNEL || ids.MOTH_CLIENT_CHANNEL,
  };
}
