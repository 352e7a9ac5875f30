import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * `npm start`'s SECRETS_KEY: the one given, else the one generated on the first start and kept in
 * DATA_DIR (what it sealed must open after a restart). A deployment gives its own, kept apart from
 * the database it protects.
 */
export function secretsKey(env: NodeJS.ProcessEnv, dataDir: string): Record<string, string> {
  if (env.SECRETS_KEY) return {};
  const file = join(resolve(dataDir), 'secrets.key');
  let key = existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
  if (!key) {
    key = randomBytes(32).toString('base64');
    mkdirSync(resolve(dataDir), { recursive: true });
    writeFileSync(file, key, { mode: 0o600 });
  }
  return { SECRETS_KEY: key };
}
