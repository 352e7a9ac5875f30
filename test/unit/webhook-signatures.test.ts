import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { newWebhookSecret, signDelivery, standardSignature } from '../../src/domain/webhooks';

// A webhook's two signatures, against HMACs computed here from the secret as the docs describe it
// (the signing keys are made once per secret and kept: each secret must keep its own).

const body = '{"type":"DEVICE_CONNECTED"}';
const hmac = (key: Buffer | string, text: string, encoding: 'hex' | 'base64') =>
  createHmac('sha256', key).update(text).digest(encoding);

describe("a webhook delivery's signatures", () => {
  it('are keyed by each secret as documented, however many secrets are in use', () => {
    // More secrets than the keys kept, each signed twice, in turn.
    const secrets = Array.from({ length: 1500 }, (_, i) =>
      i % 3 === 0 ? randomBytes(32).toString('base64url') : newWebhookSecret(),
    );
    for (const round of [1, 2])
      for (const secret of secrets) {
        const bytes = secret.startsWith('whsec_')
          ? Buffer.from(secret.slice('whsec_'.length), 'base64')
          : Buffer.from(secret, 'base64url');
        expect(standardSignature(secret, 'd1', 1700000000 + round, body)).toBe(
          `v1,${hmac(bytes, `d1.${1700000000 + round}.${body}`, 'base64')}`,
        );
        expect(signDelivery(secret, 1700000000 + round, body)).toBe(
          `sha256=${hmac(secret, `${1700000000 + round}.${body}`, 'hex')}`,
        );
      }
  });
});
