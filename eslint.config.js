// @ts-check
import tseslint from 'typescript-eslint';

const adapterLibraries = ['koa', '@koa/*', 'knex', 'pg', 'bullmq', 'ioredis', 'ws', 'pino', 'prom-client'];
const srcNeverWiring = {
  group: ['**/jobs/**', '**/workers/**'],
  message: 'src/ never imports jobs/ or workers/ (the wiring imports src/, not the reverse).',
};
/** @param {string} who */
const notStores = (who) => ({
  group: ['**/db/**', '**/redis/**', 'knex', 'pg', 'ioredis'],
  message: `${who} never imports src/db or src/redis: Postgres and Redis are reached through src/operations.`,
});

export default tseslint.config(
  // docs/examples is plain JavaScript for robot builders, run as written by test/e2e/quickstart.robot.test.ts.
  // dependency-cruiser's configuration is CommonJS, read by depcruise only.
  { ignores: ['node_modules/**', '.data/**', '.scratch/**', 'docs/**', '.dependency-cruiser.cjs'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      // Dependency factories often satisfy an async port without awaiting anything.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
    },
  },
  {
    // The direction of the layers: src/ is the product and never reaches into jobs/ or the role
    // wiring in workers/ (the only place that imports jobs/).
    files: ['src/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [srcNeverWiring] }] },
  },
  {
    // The domain is pure: it must stay testable without any infrastructure.
    files: ['src/domain/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            srcNeverWiring,
            { group: adapterLibraries, message: 'src/domain imports no infrastructure library.' },
          ],
        },
      ],
    },
  },
  {
    // Routes parse, call one operation (src/operations) and present: they never touch a store.
    files: ['src/http/routes/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [srcNeverWiring, notStores('src/http/routes')] }],
    },
  },
  {
    // The gateway hears robots; what it reads and writes of Postgres and Redis goes through operations
    // (src/operations) or the stores it is handed: their types are its ports, their code is not its own.
    // So does the HTTP part: what it takes beside its operations (credential lookups, rate limits, the
    // live feed's notifications, the event signer) is built in src/operations/http-ports.ts.
    files: ['src/gateway/**/*.ts', 'src/http/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/db/**', '**/redis/**', 'knex', 'pg', 'ioredis'],
              allowTypeImports: true,
              message:
                'src/gateway and src/http take Postgres and Redis through src/operations or the stores they are handed (types only).',
            },
          ],
        },
      ],
    },
  },
  {
    // Jobs take their payload, call one operation and return; they never touch the HTTP layer or a store.
    files: ['jobs/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['koa', '@koa/*', '**/http/**'], message: 'jobs/ never imports the HTTP layer.' },
            notStores('jobs'),
          ],
        },
      ],
    },
  },
  {
    // Small functions (style.md), counted as read: a nested function counts within the one around it.
    files: ['src/**/*.ts', 'jobs/**/*.ts', 'workers/**/*.ts', 'packages/*/src/**/*.ts'],
    rules: {
      'max-lines-per-function': ['error', { max: 60, skipBlankLines: true, skipComments: true, IIFEs: true }],
    },
  },
  {
    // The allow list: data, not steps. The OpenAPI document and the metrics' declarations are tables.
    files: ['src/http/openapi.ts', 'src/metrics.ts'],
    rules: { 'max-lines-per-function': 'off' },
  },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
);
