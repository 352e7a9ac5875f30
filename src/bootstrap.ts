import { hashSecret } from './domain/credentials';
import type { Db } from './db/knex';
import { storeSecretHash, storeSecretHashIfAbsent } from './db/settings';
import { currentSigningKey } from './db/signing-keys';

/**
 * Applies DEVICE_SECRET_KEY when given (explicit configuration wins at every start); otherwise,
 * on the very first start, stores `generated` and says so. Only the salted hash is stored.
 */
export async function applyRegistrationSecret(
  db: Db,
  fromEnv: string | undefined,
  generate: () => string,
): Promise<{ source: 'env' | 'generated' | 'stored'; secret?: string }> {
  if (fromEnv !== undefined) {
    await storeSecretHash(db, hashSecret(fromEnv));
    return { source: 'env', secret: fromEnv };
  }
  const secret = generate();
  return (await storeSecretHashIfAbsent(db, hashSecret(secret)))
    ? { source: 'generated', secret }
    : { source: 'stored' };
}

/**
 * Makes sure an event signing key exists before the first request is served: the published key set
 * (`/.well-known/rollcall-keys`, cached by clients) is never empty, even before the first event.
 */
export async function ensureSigningKey(db: Db): Promise<void> {
  await currentSigningKey(db);
}
