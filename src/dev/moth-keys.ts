import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { isRegisteredChannelId, newChannelId } from '../domain/channel-ids';

const stored = z.object({ MOTH_DEVICE_KEY: z.string().min(16), MOTH_CLIENT_KEY: z.string().min(16) });

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
  const file = join(resolve(dataDir), 'moth-keys.json');
  let keys = existsSync(file) ? stored.safeParse(JSON.parse(readFileSync(file, 'utf8'))).data : undefined;
  if (!keys) {
    keys = {
      MOTH_DEVICE_KEY: randomBytes(24).toString('base64url'),
      MOTH_CLIENT_KEY: randomBytes(24).toString('base64url'),
    };
    mkdirSync(resolve(dataDir), { recursive: true });
    writeFileSync(file, JSON.stringify(keys), { mode: 0o600 });
  }
  return {
    MOTH_DEVICE_KEY: given.MOTH_DEVICE_KEY ?? keys.MOTH_DEVICE_KEY,
    MOTH_CLIENT_KEY: given.MOTH_CLIENT_KEY ?? keys.MOTH_CLIENT_KEY,
  };
}

const storedIds = z.object({ MOTH_DEVICE_CHANNEL: z.string(), MOTH_CLIENT_CHANNEL: z.string() });

/**
 * `npm start`'s channels on the embedded hub: registered channels (see docs/security.md),
 * their ids generated on the first start and kept in DATA_DIR (robots hold the device channel's in
 * their bus path). A channel given in the environment, or a Moth of one's own (MOTH_URL), is left as
 * configured: on a real Moth the channels are registered through its management API.
 */
export function embeddedMothChannels(env: NodeJS.ProcessEnv, dataDir: string): Record<string, string> {
  if (env.MOTH_URL) return {};
  const file = join(resolve(dataDir), 'moth-channels.json');
  let ids = existsSync(file) ? storedIds.safeParse(JSON.parse(readFileSync(file, 'utf8'))).data : undefined;
  if (
    !ids ||
    !isRegisteredChannelId(ids.MOTH_DEVICE_CHANNEL) ||
    !isRegisteredChannelId(ids.MOTH_CLIENT_CHANNEL)
  ) {
    ids = { MOTH_DEVICE_CHANNEL: newChannelId(), MOTH_CLIENT_CHANNEL: newChannelId() };
    mkdirSync(resolve(dataDir), { recursive: true });
    writeFileSync(file, JSON.stringify(ids), { mode: 0o600 });
  }
  return {
    MOTH_DEVICE_CHANNEL: env.MOTH_DEVICE_CHANNEL || ids.MOTH_DEVICE_CHANNEL,
    MOTH_CLIENT_CHANNEL: env.MOTH_CLIENT_CHANNEL || ids.MOTH_CLIENT_CHANNEL,
  };
}
