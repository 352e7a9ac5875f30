import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SCRIPTS } from '../../src/redis/scripts';

// Every Lua script of ours opens with a header naming its KEYS, ARGV and reply; its file's name says
// how many KEYS it takes, once, and that is what its command is defined with.

const DIR = new URL('../../src/redis/scripts/', import.meta.url);

describe('Redis scripts', () => {
  it('each names its KEYS, ARGV and reply in a header, and is the text that loads', () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.lua'));
    expect(files.length).toBeGreaterThanOrEqual(8);
    expect(SCRIPTS.map((s) => s.file).sort()).toEqual(files.sort());
    for (const s of SCRIPTS) {
      const text = readFileSync(new URL(s.file, DIR), 'utf8');
      expect(s.lua).toBe(text);
      const header = text.slice(0, text.search(/^[^-]/m));
      expect(header, s.file).toMatch(/KEYS:/);
      expect(header, s.file).toMatch(/ARGV:/);
      expect(header, s.file).toMatch(/returns/i);
      // Every key a script touches is declared in KEYS by the module that owns it, never built here.
      const keyArgs = [...text.matchAll(/redis\.call\('[A-Z]+',\s*([^,)]+)/g)].map((m) => m[1]!.trim());
      expect(keyArgs.length, s.file).toBeGreaterThan(0);
      for (const key of keyArgs) expect(key, s.file).toMatch(/^KEYS\[\d+\]$/);
    }
  });

  it('takes as many KEYS as its name says, under the command its name gives', () => {
    for (const s of SCRIPTS) {
      const used = [...s.lua.matchAll(/KEYS\[(\d+)\]/g)].map((m) => Number(m[1]));
      expect(Math.max(...used), s.file).toBe(s.numberOfKeys);
      expect(s.command, s.file).toMatch(/^rollcall[A-Z][A-Za-z]+$/);
    }
    expect(SCRIPTS.find((s) => s.file === 'proofs-only-1.lua')?.command).toBe('rollcallProofsOnly');
  });
});
