import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'packages/*/test/**/*.test.ts'],
    // The fault-injection suite runs on its own: `npm run test:chaos`.
    exclude: ['test/chaos/**', '**/node_modules/**'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Files share one Postgres server and one Redis server, each isolated by its own database and
    // key prefix; two at a time keeps timing-sensitive round tests honest on a 2-core machine.
    maxWorkers: 2,
    pool: 'forks',
  },
});
