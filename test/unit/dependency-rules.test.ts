import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

// The import rules `npm run lint` checks with dependency-cruiser (.dependency-cruiser.cjs), run on
// small projects of their own.

const run = promisify(execFile);
const depcruise = resolve('node_modules/.bin/depcruise');
const config = resolve('.dependency-cruiser.cjs');
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A project of these files, checked: its exit code and what it said. */
async function check(files: Record<string, string>): Promise<{ code: number; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'imports-'));
  dirs.push(dir);
  const all = {
    'tsconfig.json': '{"compilerOptions":{"module":"esnext","moduleResolution":"bundler"}}',
    ...files,
  };
  for (const [path, text] of Object.entries(all)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  const roots = ['src', 'jobs', 'workers'].filter((r) =>
    Object.keys(files).some((f) => f.startsWith(`${r}/`)),
  );
  try {
    const { stdout } = await run(depcruise, [...roots, '--config', config], { cwd: dir });
    return { code: 0, output: stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string };
    return { code: e.code, output: e.stdout };
  }
}

describe('the import rules', () => {
  it('fail on files that import each other, even through types only', async () => {
    const r = await check({
      'src/redis/connection.ts': "import { keys } from './keys';\nexport const all = keys;\n",
      'src/redis/keys.ts':
        "import type { all } from './connection';\nexport const keys = 1;\nexport type K = typeof all;\n",
    });
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(/no-circular: src\/redis\/(connection|keys)\.ts/);
  });

  it('fail on a layer importing one above it, which two folders importing each other must do', async () => {
    const r = await check({
      'src/operations/a.ts': "import { b } from '../db/b';\nexport const a = b;\n",
      'src/db/b.ts': "import type { C } from '../operations/c';\nexport const b: C = 1;\n",
      'src/operations/c.ts': 'export type C = number;\n',
    });
    expect(r.code).not.toBe(0);
    expect(r.output).toContain('layers: src/db: src/db/b.ts → src/operations/c.ts');
  });

  it('pass layers that point one way', async () => {
    const r = await check({
      'src/domain/a.ts': 'export const a = 1;\n',
      'src/db/b.ts': "import { a } from '../domain/a';\nexport const b = a;\n",
      'src/config.ts': "import { a } from './domain/a';\nexport const config = a;\n",
      'jobs/c.ts': "import { b } from '../src/db/b';\nexport const c = b;\n",
      'workers/d.ts':
        "import { c } from '../jobs/c';\nimport { config } from '../src/config';\nexport const d = c + config;\n",
    });
    expect(r).toMatchObject({ code: 0 });
    expect(r.output).toContain('no dependency violations found (5 modules');
  });
});
