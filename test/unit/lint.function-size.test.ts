import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';

// The project's lint config, without type information (the probes below are not files of the program).
const eslint = new ESLint({
  overrideConfig: [{ files: ['**/*.ts'], ...tseslint.configs.disableTypeChecked }],
});

/** The max-lines-per-function messages the config gives `source` as if it were the file `path`. */
async function tooLong(path: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: path });
  return result!.messages.filter((m) => m.ruleId === 'max-lines-per-function').map((m) => m.message);
}

const statements = (n: number, indent = '  ') =>
  Array.from({ length: n }, (_, i) => `${indent}const v${i} = ${i};`).join('\n');
const comments = Array.from({ length: 30 }, () => '  // why\n').join('\n');

describe('lint: functions of at most 60 lines', () => {
  it('counts 60 lines of code, not the blank and comment lines among them', async () => {
    const ok = `export function ok() {\n${statements(58)}\n${comments}\n}\n`;
    expect(await tooLong('src/gateway/probe.ts', ok)).toEqual([]);
    const long = `export function long() {\n${statements(59)}\n}\n`;
    expect(await tooLong('src/gateway/probe.ts', long)).toHaveLength(1);
  });

  it('counts a nested function within the one around it', async () => {
    const nested = `export function outer() {\n${statements(30)}\n  function inner() {\n${statements(30, '    ')}\n  }\n  return inner;\n}\n`;
    expect(await tooLong('workers/roles/probe.ts', nested)).toHaveLength(1);
  });

  it('holds in src, jobs, workers and the packages, and lets only the allow list through', async () => {
    const long = `export function long() {\n${statements(70)}\n}\n`;
    for (const path of [
      'src/db/probe.ts',
      'jobs/probe.ts',
      'workers/probe.ts',
      'packages/robot/src/probe.ts',
    ])
      expect(await tooLong(path, long)).toHaveLength(1);
    for (const path of ['src/http/openapi.ts', 'src/metrics.ts'])
      expect(await tooLong(path, long)).toEqual([]);
  });
});
