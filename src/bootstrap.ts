import { hashSecret } from './domain/credentials';
import type { Db } from './db/knex';
import { storeSecretHash, storeSecretHashIfAbsent } from './db/settings';

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
