import { describe, expect, it } from 'vitest';
import { newToken, rememberingTokenHash, tokenHash } from '../../src/domain/credentials';

describe('a token hash that remembers', () => {
  it('gives the hash of every token, remembered or not', () => {
    const hashOf = rememberingTokenHash(3);
    const tokens = Array.from({ length: 10 }, () => newToken());
    for (const token of [...tokens, ...tokens.slice(0, 4), ...tokens])
      expect(hashOf(token)).toBe(tokenHash(token));
  });

  it('holds at most its bound, however many tokens pass through', () => {
    const hashOf = rememberingTokenHash(100);
    let largest = 0;
    for (let i = 0; i < 1000; i++) {
      hashOf(newToken());
      largest = Math.max(largest, hashOf.size);
    }
    expect(largest).toBe(100);
    // Full, it starts again; the same robots every round then stay remembered.
    const fleet = Array.from({ length: 50 }, () => newToken());
    fleet.forEach(hashOf);
    expect(hashOf.size).toBe(50);
    fleet.forEach(hashOf);
    expect(hashOf.size).toBe(50);
  });
});
