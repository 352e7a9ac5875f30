// Lints the OpenAPI document the service serves with Redocly's recommended rules (tools/redocly.yaml).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openApiDocument } from '../src/http/openapi';

const dir = mkdtempSync(join(tmpdir(), 'openapi-'));
try {
  const file = join(dir, 'openapi.json');
  writeFileSync(file, JSON.stringify(openApiDocument('1')));
  const config = new URL('./redocly.yaml', import.meta.url).pathname;
  const lint = spawnSync('redocly', ['lint', file, '--config', config, '--format', 'stylish'], {
    stdio: 'inherit',
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
  });
  process.exitCode = lint.status ?? 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
