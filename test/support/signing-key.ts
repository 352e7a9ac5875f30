import { generateKeyPairSync } from 'node:crypto';
import type { PublicJwk, SigningKey } from '../../src/domain/signatures';

/** A fresh Ed25519 signing key and its public half as the key set publishes it. */
export function testSigningKey(kid = 'k1'): { key: SigningKey; jwk: PublicJwk } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    key: { kid, privateKey },
    jwk: {
      kty: 'OKP',
      crv: 'Ed25519',
      x: publicKey.export({ format: 'jwk' }).x!,
      kid,
      alg: 'EdDSA',
      use: 'sig',
    },
  };
}
