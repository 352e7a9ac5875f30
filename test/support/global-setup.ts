import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { createDb, migrateLatest } from '../../src/db/knex';
import { startEmbeddedPostgres } from '../../src/dev/embedded-postgres';
import { startEmbeddedRedis } from '../../src/dev/embedded-redis';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of the migrated template database; each test file clones it. */
    templateDbUrl: string;
    redisUrl: string;
    /** A scratch folder for this run. */
    runDir: string;
  }
}

/** One real Postgres and one real Redis per test run, started here and stopped at the end. */
export default async function setup(project: TestProject) {
  const runDir = mkdtempSync(join(tmpdir(), 'rollcall-test-'));
  chmodSync(runDir, 0o755); // Postgres runs as its own user when we are root
  const pg = await startEmbeddedPostgres(join(runDir, 'postgres'), 'rollcall_template');
  const redis = await startEmbeddedRedis(join(runDir, 'redis'));
  const db = createDb(pg.url, 1);
  try {
    await migrateLatest(db);
  } finally {
    await db.destroy();
  }
  project.provide('templateDbUrl', pg.url);
  project.provide('redisUrl', redis.url);
  project.provide('runDir', runDir);
  return async () => {
    await redis.stop();
    await pg.stop();
    rmSync(runDir, { recursive: true, force: true });
  };
}
