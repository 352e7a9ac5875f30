import { createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { signEvent, type PublicJwk, type SigningKey } from '../domain/signatures';
import type { Db, Queryable } from './knex';
import { seal, unseal } from './sealing';

/** The sealed column of a private key (bound into its seal). */
const PRIVATE_KEY = 'signing_keys.private_key';

interface KeyRow {
  kid: string;
  private_key: string;
  public_x: string;
  created_at: Date;
  retired_at: Date | null;
}

/** A retired key stays published this long, so what it signed still verifies. */
const RETIRED_KEY_PUBLISHED_DAYS = 30;

/** Generates and stores a new signing key: from now on the one in use. */
export async function addSigningKey(q: Queryable): Promise<string> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const kid = randomBytes(8).toString('base64url');
  await q('signing_keys').insert({
    kid,
    private_key: seal(privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'), PRIVATE_KEY),
    public_x: publicKey.export({ format: 'jwk' }).x!,
  });
  return kid;
}

/** The newest key not retired: the one in use. */
const newestKey = (q: Queryable) =>
  q('signing_keys')
    .whereNull('retired_at')
    .orderBy([
      { column: 'created_at', order: 'desc' },
      { column: 'kid', order: 'desc' },
    ])
    .first<KeyRow | undefined>();

/** A stored key, opened. */
const signingKeyOf = (row: KeyRow): SigningKey => ({
  kid: row.kid,
  privateKey: createPrivateKey({
    key: Buffer.from(unseal(row.private_key, PRIVATE_KEY), 'base64'),
    format: 'der',
    type: 'pkcs8',
  }),
});

/** The key in use: the newest not retired (one is created on first use). */
export async function currentSigningKey(q: Queryable): Promise<SigningKey> {
  // Two processes starting at once may both add one: both are published, the newest wins.
  const row = (await newestKey(q)) ?? (await addSigningKey(q), await newestKey(q));
  return signingKeyOf(row!);
}

/**
 * Every key whose signatures still verify: in use, or retired within RETIRED_KEY_PUBLISHED_DAYS, and
 * never revoked.
 */
export async function publishedKeys(q: Queryable): Promise<PublicJwk[]> {
  const rows = await q('signing_keys')
    .whereNull('revoked_at')
    .where((w) =>
      w
        .whereNull('retired_at')
        .orWhere('retired_at', '>', q.raw(`now() - make_interval(days => ?)`, [RETIRED_KEY_PUBLISHED_DAYS])),
    )
    .orderBy('created_at')
    .select<Pick<KeyRow, 'kid' | 'public_x'>[]>('kid', 'public_x');
  return rows.map((r) => ({
    kty: 'OKP',
    crv: 'Ed25519',
    x: r.public_x,
    kid: r.kid,
    alg: 'EdDSA',
    use: 'sig',
  }));
}

/** Puts a new key in use and retires the others (still published for RETIRED_KEY_PUBLISHED_DAYS). */
export async function rotateSigningKey(q: Queryable): Promise<string> {
  const kid = await addSigningKey(q);
  await q('signing_keys').whereNot({ kid }).whereNull('retired_at').update({ retired_at: q.fn.now() });
  return kid;
}

/**
 * Revokes a key: unpublished at once (what it signed no longer verifies) and never used again; when it
 * was the key in use, a new one is put in use first. False when there is no such key.
 */
export async function revokeSigningKey(db: Db, kid: string): Promise<boolean> {
  return db.transaction(async (trx) => {
    const row = await trx('signing_keys').where({ kid }).forUpdate().first<KeyRow | undefined>();
    if (!row) return false;
    if (row.retired_at === null) await rotateSigningKey(trx);
    await trx('signing_keys').where({ kid }).update({ revoked_at: trx.fn.now() });
    return true;
  });
}

/**
 * Signs events with the key in use. Which key that is is asked again at most every `checkMs` (one
 * small read a second while events are signed), so a rotation or a revocation reaches every process
 * within that; the key itself is loaded only when it changed.
 */
export function createEventSigner(q: Queryable, checkMs = 1000) {
  let current: SigningKey | undefined;
  let check: { at: number; key: Promise<SigningKey> } | undefined;
  const inUse = async (): Promise<SigningKey> => {
    const newest = await newestKey(q);
    // The row just read is opened when the key changed; none yet: the first one is created.
    if (!newest) current = await currentSigningKey(q);
    else if (current?.kid !== newest.kid) current = signingKeyOf(newest);
    return current;
  };
  const key = () => {
    if (!check || Date.now() - check.at > checkMs) {
      const loading = inUse();
      check = { at: Date.now(), key: loading };
      // A failed read is not kept: the next event asks again.
      loading.catch(() => (check = undefined));
    }
    return check.key;
  };
  return {
    async sign<T extends object>(event: T) {
      return signEvent(event, await key());
    },
  };
}
