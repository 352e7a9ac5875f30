import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createSealer, isSealed, parseSecretsKey } from '../../src/domain/sealed';

const key = randomBytes(32);

describe('secrets sealed at rest', () => {
  it('seals to a value that names nothing of the secret, opens back, differently each time', () => {
    const s = createSealer(key);
    const a = s.seal('whsec-plain-text', 'webhooks.secret');
    const b = s.seal('whsec-plain-text', 'webhooks.secret');
    expect(isSealed(a)).toBe(true);
    expect(a).not.toContain('whsec');
    expect(a).not.toBe(b);
    expect(s.open(a, 'webhooks.secret')).toBe('whsec-plain-text');
  });

  it('opens only under its key, in its own column, unaltered', () => {
    const sealed = createSealer(key).seal('secret', 'webhooks.secret');
    expect(() => createSealer(randomBytes(32)).open(sealed, 'webhooks.secret')).toThrow();
    expect(() => createSealer(key).open(sealed, 'signing_keys.private_key')).toThrow();
    const flipped = sealed.slice(0, -2) + (sealed.at(-2) === 'A' ? 'B' : 'A') + sealed.at(-1)!;
    expect(() => createSealer(key).open(flipped, 'webhooks.secret')).toThrow();
    expect(() => createSealer(undefined).open(sealed, 'webhooks.secret')).toThrow(/SECRETS_KEY/);
  });

  it('without a key stores as is; a value stored in the clear is read as it is', () => {
    expect(createSealer(undefined).seal('plain', 'webhooks.secret')).toBe('plain');
    expect(createSealer(key).open('stored-before-a-key', 'webhooks.secret')).toBe('stored-before-a-key');
  });

  it('takes a key of 32 bytes in base64 only', () => {
    expect(parseSecretsKey(key.toString('base64'))).toEqual(key);
    expect(parseSecretsKey(key.toString('base64url'))).toEqual(key);
    for (const bad of ['', 'short', randomBytes(16).toString('base64'), randomBytes(33).toString('base64')])
      expect(() => parseSecretsKey(bad)).toThrow(/32 bytes/);
  });
});
