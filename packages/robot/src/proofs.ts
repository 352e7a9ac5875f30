import { createHash, createHmac } from 'node:crypto';

/**
 * Protocol v2's answer to a HEALTHCHECK (or a goodbye): the token never goes on the bus, only
 * `base64url(HMAC-SHA-256(key = SHA-256(token), "<round>.<nonce>"))`, prefixed `GOODBYE.` for a goodbye.
 */
export function proof(
  token: string,
  round: number,
  nonce: string,
  purpose: 'heartbeat' | 'goodbye' = 'heartbeat',
): string {
  const message = `${purpose === 'goodbye' ? 'GOODBYE.' : ''}${round}.${nonce}`;
  return createHmac('sha256', createHash('sha256').update(token).digest())
    .update(message)
    .digest('base64url');
}
