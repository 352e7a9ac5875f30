// `npm start`: the whole system in one process tree on the embedded default.
import { randomBytes } from 'node:crypto';
import { applyRegistrationSecret } from '../src/bootstrap';
import { ConfigError, loadConfig } from '../src/config';
import { createDb, migrateLatest } from '../src/db/knex';
import { MissingDependencyError } from '../src/dev/embedded-redis';
import { startEmbeddedStack } from '../src/dev/stack';
import { createLogger } from '../src/logger';
import { onShutdownSignal, stopAll, type Role } from '../src/roles/role';
import { startWeb } from '../src/roles/web';

async function main() {
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL, 'rollcall');
  const roles: Role[] = [];
  const stop = () => stopAll(roles, (err) => logger.error({ err }, 'stop failed'));
  onShutdownSignal(async () => {
    logger.info('stopping');
    await stop();
  });

  const stack = await startEmbeddedStack(config, logger);
  roles.push(...stack.services);
  const full = stack.config;

  const db = createDb(full.DATABASE_URL, 2);
  let secret: Awaited<ReturnType<typeof applyRegistrationSecret>>;
  try {
    await migrateLatest(db);
    secret = await applyRegistrationSecret(db, full.DEVICE_SECRET_KEY, () => randomBytes(24).toString('base64url'));
  } finally {
    await db.destroy();
  }

  const web = await startWeb({ ...full }, logger);
  roles.push(web);

  const api = `http://localhost:${web.port}`;
  const lines = [
    '',
    'rollcall is up',
    `  API                 ${api}`,
    `  admin token         ${full.ADMIN_TOKEN}${config.ADMIN_TOKEN ? '  (from ADMIN_TOKEN)' : '  (generated for this run; set ADMIN_TOKEN to fix it)'}`,
    secret.secret
      ? `  registration secret ${secret.secret}  (${secret.source === 'env' ? 'from DEVICE_SECRET_KEY' : 'generated on first start, stored hashed: note it now'})`
      : '  registration secret unchanged (stored hashed; set DEVICE_SECRET_KEY or PATCH /server-settings to replace it)',
    `  postgres            ${stack.startedHere.includes('postgres') ? `embedded, data in ${full.DATA_DIR}/postgres` : 'DATABASE_URL'}`,
    `  redis               ${stack.startedHere.includes('redis') ? `embedded, data in ${full.DATA_DIR}/redis` : 'REDIS_URL'}`,
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof MissingDependencyError) {
    process.stderr.write(`rollcall cannot start: ${err.message}\n`);
  } else {
    process.stderr.write(`rollcall failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  process.exit(1);
});
