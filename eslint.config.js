// @ts-check
import tseslint from 'typescript-eslint';

const adapterLibraries = ['koa', '@koa/*', 'knex', 'pg', 'bullmq', 'ioredis', 'ws', 'pino', 'prom-client'];

export default tseslint.config(
  { ignores: ['node_modules/**', '.data/**', '.scratch/**'] },
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
    // The domain is pure: it must stay testable without any infrastructure.
    files: ['src/domain/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: adapterLibraries, message: 'src/domain imports no infrastructure library.' }] },
      ],
    },
  },
  {
    // Jobs say what runs; they never touch the HTTP layer.
    files: ['jobs/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['koa', '@koa/*', '**/http/**'], message: 'jobs/ never imports the HTTP layer.' },
          ],
        },
      ],
    },
  },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
);
