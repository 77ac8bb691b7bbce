// A mesh the API started keeps its creator across continue-as-new (the dev server suggests it
// early here, after 40 events): the new run's memo and MeshCreatedBy still name the token, the
// status still says createdBy, and the token's open-mesh count still holds it. Real mesh workflow,
// TEST DOUBLE activities.
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { type RunningApi, startApi } from '../src/api/server';
import { MESH_SEARCH_ATTRIBUTES } from '../src/temporal/search-attributes';
import { sleep } from '../src/util/net';
import { WORKER_TUNING } from '../src/worker';
import { TASK_QUEUE } from '../src/workflows/definitions';
import { call } from './helpers/api-http';
import { FakeActivities, twoClusterYaml } from './helpers/fake-activities';
import { devServer } from './helpers/temporal';

const TOKEN = 'continued-token-0123456789';
let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
let api: RunningApi;

beforeAll(async () => {
  env = await devServer({ 'limit.historyCount.suggestContinueAsNew': 40 });
  worker = await Worker.create({
    ...WORKER_TUNING,
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowsPath: require.resolve('../src/workflows'),
    activities: new FakeActivities().activities(),
    shutdownGraceTime: '1s',
  });
  running = worker.run();
  api = await startApi({
    client: env.client,
    namespace: 'default',
    tokens: [{ name: 'ci', token: TOKEN }],
    limits: { openMeshes: 1 },
    log: () => {},
    host: '127.0.0.1',
    port: 0,
  });
});

afterAll(async () => {
  await api?.close();
  worker?.shutdown();
  await running;
  await env?.teardown();
});

const as = { token: TOKEN };

test('after continue-as-new the run still names its creator and still counts against its quota', async () => {
  const created = await call(api.port, 'POST', '/v1/meshes', {
    ...as,
    body: twoClusterYaml('cont'),
    type: 'text/yaml',
  });
  expect(created.status).toBe(202);
  const handle = env.client.workflow.getHandle('mesh/cont');
  for (let i = 0; i < 100 && (await handle.describe()).runId === created.json.runId; i++) {
    await call(api.port, 'POST', '/v1/meshes/cont/extend', { ...as, body: '{"by":"1m"}', type: 'application/json' });
    await sleep(50);
  }
  const latest = await handle.describe();
  expect(latest.runId).not.toBe(created.json.runId);
  expect(latest.memo?.createdBy).toBe('ci');
  expect(latest.typedSearchAttributes.get(MESH_SEARCH_ATTRIBUTES.createdBy)).toBe('ci');
  expect((await call(api.port, 'GET', '/v1/meshes/cont', as)).json.createdBy).toBe('ci');
  const second = await call(api.port, 'POST', '/v1/meshes', {
    ...as,
    body: twoClusterYaml('cont2'),
    type: 'text/yaml',
  });
  expect(second.status).toBe(429);
  await call(api.port, 'DELETE', '/v1/meshes/cont', as);
});
