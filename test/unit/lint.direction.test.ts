import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';

// The project's lint config, without type information (the probes below are not files of the program).
const eslint = new ESLint({
  overrideConfig: [{ files: ['**/*.ts'], ...tseslint.configs.disableTypeChecked }],
});

/** The no-restricted-imports messages the config gives `source` as if it were the file `path`. */
async function restricted(path: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: path });
  return result!.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('lint: the direction of the layers', () => {
  it.each([
    ['src/gateway/probe.ts', "import { createAbortTask } from '../../jobs/abort-task';"],
    ['src/http/probe.ts', "import { startWeb } from '../../workers/roles/web';"],
    ['src/domain/probe.ts', "import type { Role } from '../../workers/roles/role';"],
    ['src/http/routes/probe.ts', "import { findLiveDevice } from '../../db/devices';"],
    ['src/http/routes/probe.ts', "import type { Liveness } from '../../redis/liveness';"],
    ['jobs/probe.ts', "import { appendEvents } from '../src/db/outbox';"],
    ['jobs/probe.ts', "import { createRounds } from '../src/redis/rounds';"],
    ['jobs/probe.ts', "import { errorHandler } from '../src/http/errors';"],
  ])('%s may not: %s', async (path, source) => {
    expect(await restricted(path, `${source}\nexport {};\n`)).toHaveLength(1);
  });

  it.each([
    ['src/http/routes/probe.ts', "import type { ApiOperations } from '../../operations';"],
    ['jobs/probe.ts', "import { done } from '../src/effects/run-effect';"],
    ['workers/roles/probe.ts', "import { createAbortTask } from '../../jobs/abort-task';"],
    ['src/operations/probe.ts', "import { appendEvents } from '../db/outbox';"],
  ])('%s may: %s', async (path, source) => {
    expect(await restricted(path, `${source}\nexport {};\n`)).toEqual([]);
  });
});

describe('lint: the gateway and the HTTP part reach the stores through operations', () => {
  const refused = async (source: string, filePath = 'src/gateway/probe.ts') => {
    const [result] = await eslint.lintText(`${source}\nexport {};\n`, { filePath });
    return result!.messages.filter((m) => m.ruleId === '@typescript-eslint/no-restricted-imports');
  };

  it.each([
    "import { listDeviceBuses } from '../db/devices';",
    "import { createRounds } from '../redis/rounds';",
    "import Redis from 'ioredis';",
  ])('refuses: %s', async (source) => {
    expect(await refused(source)).toHaveLength(1);
  });

  it.each([
    "import type { Liveness } from '../redis/liveness';",
    "import type { Db } from '../db/knex';",
    "import { createGatewayRecords } from '../operations/gateway-records';",
  ])('lets through: %s', async (source) => {
    expect(await refused(source)).toEqual([]);
  });

  it('holds in src/http too, its composition root included', async () => {
    const source = "import { fleetPage } from '../db/fleet';";
    expect(await refused(source, 'src/http/admin.ts')).toHaveLength(1);
    expect(await refused(source, 'src/http/app.ts')).toHaveLength(1);
    expect(await refused("import type { Db } from '../db/knex';", 'src/http/app.ts')).toEqual([]);
  });
});
