import { ConfigError, loadConfig, type Config } from '../src/config';
import { createLogger, type Logger } from '../src/logger';
import { onShutdownSignal, type Role } from './roles/role';

/**
 * Runs one Procfile role against external services: every URL it needs must be set.
 * SIGTERM drains it (no new work, in-flight work finishes) and exits.
 */
export function runRole<C extends Config>(
  name: string,
  required: readonly (keyof Config)[],
  start: (config: C, logger: Logger) => Promise<Role>,
): void {
  let config: Config;
  try {
    config = loadConfig();
    const missing = required.filter((k) => !config[k]);
    if (missing.length > 0)
      throw new ConfigError(`the ${name} role needs ${missing.join(', ')} (see docs/configuration.md)`);
  } catch (err) {
    process.stderr.write(`rollcall ${name} cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const logger = createLogger(config.LOG_LEVEL, `rollcall-${name}`);
  start(config as C, logger)
    .then((role) =>
      onShutdownSignal(async () => {
        logger.info('draining');
        await role.stop();
      }),
    )
    .catch((err: unknown) => {
      logger.fatal({ err }, `${name} failed to start`);
      process.exit(1);
    });
}
