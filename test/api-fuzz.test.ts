// Property-based requests against the API from its own OpenAPI document (schemathesis, pinned, see
// helpers/schemathesis.ts), on the Temporal dev server with the real mesh workflow and the TEST
// DOUBLE activities: a bounded run (seeded, about 2,000 requests, loopback only) in which no
// answer is a 5xx and every answer is one the document declares, with its content type, headers
// and schema, and requests the document refuses are refused. Left out: the event stream (it does
// not end) and /v1/schedules (a created schedule keeps starting meshes after the run).
import { execa } from 'execa';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { type RunningApi, startApi } from '../src/api/server';
import { WORKER_TUNING } from '../src/worker';
import { TASK_QUEUE } from '../src/workflows/definitions';
import { scratchDir } from './helpers/env';
import { FakeActivities } from './helpers/fake-activities';
import { schemathesisPython } from './helpers/schemathesis';
import { devServer } from './helpers/temporal';

const TOKEN = 'fuzz-token-0123456789abcdef';
let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
let api: RunningApi;
const answers: Array<{ method: string; route: string; status: number }> = [];

beforeAll(async () => {
  env = await devServer();
  worker = await Worker.create({
    ...WORKER_TUNING,
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowsPath: require.resolve('../src/workflow-bundle'),
    activities: new FakeActivities().activities(),
    shutdownGraceTime: '1s',
  });
  running = worker.run();
  api = await startApi({
    client: env.client,
    namespace: 'default',
    tokens: [TOKEN],
    log: (e) => e.msg === 'request' && answers.push(e as (typeof answers)[number]),
    host: '127.0.0.1',
    port: 0,
  });
}, 300_000);

afterAll(async () => {
  await api?.close();
  worker?.shutdown();
  await running;
  await env?.teardown();
});

test('a seeded schemathesis run finds no 5xx and no answer the document does not declare', async () => {
  const python = await schemathesisPython();
  const checks = [
    'not_a_server_error',
    'status_code_conformance',
    'content_type_conformance',
    'response_headers_conformance',
    'response_schema_conformance',
    'negative_data_rejection',
  ];
  const run = await execa(
    python,
    [
      ...['-m', 'schemathesis.cli', 'run', `${api.url}/openapi.json`],
      ...['-H', `Authorization: Bearer ${TOKEN}`],
      ...['--checks', checks.join(',')],
      // Excluded options are or-ed: this leaves out GET /v1/schedules with the create.
      ...['--exclude-path-regex', '/events$|^/v1/schedules$'],
      ...['--phases', 'examples,coverage,fuzzing', '--max-examples', '4', '--seed', '1', '--workers', '1'],
      ...['--request-timeout', '30', '--no-color', '--output-truncate', 'false'],
    ],
    // Its own directory: schemathesis keeps a database of examples where it runs.
    {
      cwd: scratchDir('api-fuzz'),
      all: true,
      reject: false,
      env: { NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1' },
      timeout: 900_000,
    },
  );
  const server = answers.filter((a) => a.status >= 500);
  expect({ exit: run.exitCode, server, output: run.exitCode ? run.all : '' }).toEqual({
    exit: 0,
    server: [],
    output: '',
  });
  // Bounded: about 2,000 requests (the coverage phase makes most; apply, plan and drift added a third),
  // all to this loopback server.
  expect(answers.length).toBeGreaterThan(100);
  expect(answers.length).toBeLessThan(3000);
  const byStatus = new Map<number, number>();
  for (const a of answers) byStatus.set(a.status, (byStatus.get(a.status) ?? 0) + 1);
  process.stderr.write(`schemathesis: ${answers.length} requests, by status ${JSON.stringify([...byStatus])}\n`);
}, 1_200_000);
