import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** `npm run lint`'s function-size check over a project of one file, src/a.ts: exit code and output. */
async function check(text: string): Promise<{ code: number; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'sizes-'));
  dirs.push(dir);
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src/a.ts'), text);
  try {
    return { code: 0, output: (await run('npx', ['tsx', 'tools/check-function-size.ts', dir])).stdout };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, output: e.stderr };
  }
}

const statements = (n: number) => Array.from({ length: n }, (_, i) => `  const v${i} = ${i};`).join('\n');

describe('the function size check', () => {
  it('fails on a function of 61 lines of code', async () => {
    const r = await check(`export function long() {\n${statements(59)}\n}\n`);
    expect(r.code).toBe(1);
    expect(r.output).toMatch(/function over 60 lines: .*src\/a\.ts:1 long: 61 lines/);
  });

  it('passes 60 lines, however many comments, blank lines, nested functions and tables come with them', async () => {
    const nested = `  function inner() {\n${statements(50)}\n  }`;
    const table = `  const table = {\n${Array.from({ length: 80 }, (_, i) => `    k${i}: ${i},`).join('\n')}\n  };`;
    const comments = Array.from({ length: 30 }, () => '  // why\n').join('\n');
    const r = await check(
      `export function ok() {\n${statements(54)}\n${comments}\n${nested}\n${table}\n  return inner;\n}\n`,
    );
    expect(r).toEqual({ code: 0, output: 'no function over 60 lines in 1 files\n' });
  });
});
