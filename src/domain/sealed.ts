import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * Secrets the service must read back (event signing keys, webhook secrets) are sealed at rest:
 * AES-256-GCM under a key from the environment (SECRETS_KEY), stored as `sealed:v1:<iv>.<tag>.<data>`
 * (base64url), the column's name bound in as associated data so a value cannot be moved to another.
 * Without a key they are stored as they are; a value stored before a key was set is read as it is and
 * sealed at the next start with one.
 */
const PREFIX = 'sealed:v1:';

export interface Sealer {
  /** Whether values are sealed (a key is set). */
  readonly sealing: boolean;
  seal(plain: string, column: string): string;
  open(stored: string, column: string): string;
}

/** The 32-byte key from its base64 or base64url text; throws on anything else. */
export function parseSecretsKey(text: string): Buffer {
  const key = Buffer.from(text, 'base64url');
  if (key.length !== 32 || !/^[A-Za-z0-9+/_-]{43}=?$/.test(text))
    throw new Error('SECRETS_KEY must be 32 bytes in base64 (openssl rand -base64 32)');
  return key;
}

export function createSealer(key: Buffer | undefined): Sealer {
  return {
    sealing: key !== undefined,
    seal(plain, column) {
      if (!key) return plain;
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(Buffer.from(column));
      const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return `${PREFIX}${[iv, cipher.getAuthTag(), data].map((b) => b.toString('base64url')).join('.')}`;
    },
    open(stored, column) {
      if (!stored.startsWith(PREFIX)) return stored;
      if (!key) throw new Error(`${column} is sealed: set SECRETS_KEY to the key it was sealed with`);
      const [iv, tag, data] = stored
        .slice(PREFIX.length)
        .split('.')
        .map((p) => Buffer.from(p, 'base64url'));
      const decipher = createDecipheriv('aes-256-gcm', key, iv!).setAAD(Buffer.from(column));
      decipher.setAuthTag(tag!);
      return Buffer.concat([decipher.update(data!), decipher.final()]).toString('utf8');
    },
  };
}

/** Whether a stored value is sealed. */
export const isSealed = (stored: string) => stored.startsWith(PREFIX);
