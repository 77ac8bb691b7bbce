// Lint rules. Workflow code runs in Temporal's deterministic sandbox and is replayed, so it may
// not import Node built-ins or most packages, and may not read clocks, randomness or the
// environment directly (the SDK's own Date and Math.random are replay-safe; timers come from
// @temporalio/workflow).
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const nodeBuiltins = [
  'assert',
  'buffer',
  'child_process',
  'cluster',
  'crypto',
  'dgram',
  'dns',
  'events',
  'fs',
  'fs/promises',
  'http',
  'http2',
  'https',
  'net',
  'os',
  'path',
  'perf_hooks',
  'process',
  'readline',
  'stream',
  'timers',
  'tls',
  'url',
  'util',
  'v8',
  'vm',
  'worker_threads',
  'zlib',
];

/** Imports that do I/O: a workflow, and anything its bundle holds, may not make them. */
const ioImports = [
  ...nodeBuiltins
    .flatMap((m) => [m, `node:${m}`])
    .map((name) => ({ name, message: 'Workflow code may not use Node built-ins: do it in an activity.' })),
  { name: 'execa', message: 'Workflow code may not run programs: do it in an activity.' },
  { name: '@kubernetes/client-node', message: 'Workflow code may not do I/O: do it in an activity.' },
];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.cjs', 'jest.config.js'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['src/workflows/**/*.ts', 'src/workflow-bundle.ts', 'src/sweep/workflow.ts'],
    languageOptions: { globals: {} },
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            ...ioImports,
            { name: '@temporalio/client', message: 'Workflows use @temporalio/workflow, not the client.' },
            { name: '@temporalio/worker', message: 'Workflows use @temporalio/workflow, not the worker.' },
          ],
          patterns: [
            {
              group: ['../activities/*', '../activities'],
              allowTypeImports: true,
              message: 'Workflows import activity types only (import type), through proxyActivities.',
            },
            {
              group: ['../local/*', '../tools/*', '../sim/*', '../util/daemon', '../util/net'],
              message: 'Workflow code may not import modules that do I/O.',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'Workflow code may not read the process environment: pass it as workflow input.' },
        { name: 'setTimeout', message: 'Use sleep() or condition() from @temporalio/workflow.' },
        { name: 'setInterval', message: 'Use sleep() from @temporalio/workflow in a loop.' },
        { name: 'setImmediate', message: 'Not available in workflows.' },
        { name: 'fetch', message: 'Workflow code may not do I/O: do it in an activity.' },
        { name: 'require', message: 'Use static imports in workflow code.' },
        { name: 'performance', message: 'Not deterministic: use workflow time (Date.now() is replay-safe).' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'crypto', property: 'randomUUID', message: 'Use uuid4() from @temporalio/workflow.' },
        {
          object: 'crypto',
          property: 'getRandomValues',
          message: 'Use Math.random() (seeded and replay-safe in workflows).',
        },
      ],
    },
  },
  {
    // What the workflow bundle holds besides the workflows: the provider registry, the contract and
    // each provider's definition (their runtimes are the worker's), and a provider loaded from outside.
    files: [
      'src/providers/registry.ts',
      'src/providers/contract.ts',
      'src/providers/*/definition.ts',
      'test/fixtures/lab-provider.ts',
    ],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ioImports,
          patterns: [
            {
              group: [
                '**/runtime',
                '**/runtimes',
                '**/local/clusters',
                '**/local/tools',
                '**/tools/*',
                '**/sim/*',
                '**/adapters/*',
              ],
              allowTypeImports: true,
              message: 'The workflow bundles this file: import runtimes and I/O as types only.',
            },
          ],
        },
      ],
    },
  },
  {
    // The workflow, its activities and the plan stay readable a function at a time.
    files: ['src/workflows/**/*.ts', 'src/activities/**/*.ts', 'src/plan/**/*.ts'],
    rules: { 'max-lines-per-function': ['error', { max: 120, skipBlankLines: true, skipComments: true }] },
  },
);
