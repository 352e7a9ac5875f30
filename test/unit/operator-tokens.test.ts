import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { operatorLabel, operatorTokens } from '../../src/domain/operators';

const long = (c: string) => c.repeat(32);

describe('operator tokens, each with a label for the audit log', () => {
  it('reads ADMIN_TOKEN as admin and ADMIN_TOKENS as label=token pairs, and tells them apart', () => {
    const tokens = operatorTokens(long('a'), ` alice=${long('b')}, ci-bot=${long('c')} `);
    expect(tokens.map((t) => t.label)).toEqual(['admin', 'alice', 'ci-bot']);
    expect(operatorLabel(tokens, long('c'))).toBe('ci-bot');
    expect(operatorLabel(tokens, long('a'))).toBe('admin');
    expect(operatorLabel(tokens, long('d'))).toBeUndefined();
  });

  it('refuses a short token, a bad label, a label or a token twice, and says so at start', () => {
    expect(() => operatorTokens(undefined, `alice=short`)).toThrow(/at least 32/);
    expect(() => operatorTokens(undefined, `al ice=${long('b')}`)).toThrow(/label=token/);
    expect(() => operatorTokens(undefined, long('b'))).toThrow(/label=token/);
    expect(() => operatorTokens(long('a'), `admin=${long('b')}`)).toThrow(/once/);
    expect(() => operatorTokens(long('a'), `bob=${long('a')}`)).toThrow(/once/);
    expect(() => loadConfig({ ADMIN_TOKENS: 'alice=short' })).toThrow(/ADMIN_TOKENS/);
  });
});
