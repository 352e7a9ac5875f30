import { defineConfig } from 'vitest/config';

// `npm run test:chaos`: the fault-injection suite, one scenario at a time.
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    pool: 'forks',
  },
});
