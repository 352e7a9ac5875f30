import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { script } from '../../src/redis/scripts';

// Every Lua script of ours opens with a header naming its KEYS, ARGV and reply, and is what loads.

const DIR = new URL('../../src/redis/scripts/', import.meta.url);

describe('Redis scripts', () => {
  it('each names its KEYS, ARGV and reply in a header, and is the text the modules load', () => {
    const names = readdirSync(DIR).filter((f) => f.endsWith('.lua'));
    expect(names.length).toBeGreaterThanOrEqual(8);
    for (const file of names) {
      const text = readFileSync(new URL(file, DIR), 'utf8');
      const header = text.slice(0, text.search(/^[^-]/m));
      expect(header, file).toMatch(/KEYS:/);
      expect(header, file).toMatch(/ARGV:/);
      expect(header, file).toMatch(/returns/i);
      // Every key a script touches is declared in KEYS by the module that owns it, never built here.
      const keyArgs = [...text.matchAll(/redis\.call\('[A-Z]+',\s*([^,)]+)/g)].map((m) => m[1]!.trim());
      expect(keyArgs.length, file).toBeGreaterThan(0);
      for (const key of keyArgs) expect(key, file).toMatch(/^KEYS\[\d+\]$/);
      const name = file.replace(/\.lua$/, '');
      expect(script(name)).toBe(text);
    }
  });
});
