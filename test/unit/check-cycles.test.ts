import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A project of these files, checked by `npm run lint`'s cycle check: its exit code and what it said. */
async function check(files: Record<string, string>): Promise<{ code: number; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'cycles-'));
  dirs.push(dir);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  try {
    const { stdout } = await run('npx', ['tsx', 'tools/check-cycles.ts', dir]);
    return { code: 0, output: stdout };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, output: e.stderr };
  }
}

describe('the import cycle check', () => {
  it('fails on two folders that import each other, even through types only', async () => {
    const r = await check({
      'src/domain/a.ts': "import type { B } from '../db/b';\nexport type A = B;\n",
      'src/db/b.ts': "import { c } from '../domain/c';\nexport type B = typeof c;\n",
      'src/domain/c.ts': 'export const c = 1;\n',
    });
    expect(r).toMatchObject({ code: 1 });
    expect(r.output).toMatch(
      /folder import cycle: (src\/domain -> src\/db -> src\/domain|src\/db -> src\/domain -> src\/db)/,
    );
  });

  it('fails on files that import each other', async () => {
    const r = await check({
      'jobs/a.ts': "import { b } from './b';\nexport const a = b;\n",
      'jobs/b.ts': "import { a } from './a';\nexport const b = () => a;\n",
    });
    expect(r.code).toBe(1);
    expect(r.output).toContain('import cycle: jobs/a.ts -> jobs/b.ts -> jobs/a.ts');
  });

  it('passes layers that point one way', async () => {
    const r = await check({
      'src/domain/a.ts': 'export const a = 1;\n',
      'src/db/b.ts': "import { a } from '../domain/a';\nexport const b = a;\n",
      'jobs/c.ts': "import { b } from '../src/db/b';\nexport const c = b;\n",
      'workers/d.ts': "import { c } from '../jobs/c';\nexport const d = c;\n",
    });
    expect(r).toEqual({ code: 0, output: 'no import cycles among 4 files and 4 folders\n' });
  });
});
