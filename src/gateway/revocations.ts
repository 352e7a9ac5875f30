import type { RedisClient } from '../redis/connection';
import type { HeartbeatIngest } from './heartbeat-ingest';

/**
 * Takes revoked tokens from Redis pub/sub into the ingestion's memory, so no gateway counts one after
 * its revocation. A message missed while the subscriber was away cannot be told apart from none: on
 * every (re)connect the memory is dropped, and Redis confirms each token again.
 */
export async function followRevocations(
  subscriber: RedisClient,
  channel: string,
  ingest: Pick<HeartbeatIngest, 'revoke' | 'forgetTokens'>,
): Promise<void> {
  subscriber.on('ready', () => ingest.forgetTokens());
  subscriber.on('message', (from: string, raw: string) => {
    if (from !== channel) return;
    try {
      const { deviceId, tokenHash } = JSON.parse(raw) as { deviceId: unknown; tokenHash: unknown };
      if (typeof deviceId !== 'string' || typeof tokenHash !== 'string') throw new Error('malformed');
      ingest.revoke(deviceId, tokenHash);
    } catch {
      // A revocation we cannot read: every token held is checked again rather than guessed at.
      ingest.forgetTokens();
    }
  });
  await subscriber.subscribe(channel);
  // Whatever was taken before the subscription held is confirmed again too.
  ingest.forgetTokens();
}
