// The rig of the workflow tests that run the real mesh workflow with the activities' TEST DOUBLE:
// a Temporal dev server and one worker on `taskQueue`, started before the file's tests and stopped
// after them. `env()` is the running environment (its client, its connection).
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { type RunningApi, startApi } from '../../src/api/server';
import { WORKER_TUNING } from '../../src/worker';
import { sleep } from '../../src/util/net';
import { TASK_QUEUE, statusQuery } from '../../src/workflows/definitions';
import type { MeshStatus } from '../../src/workflows/types';
import type { FakeActivities } from './fake-activities';
import { devServer } from './temporal';

type ApiOptions = Parameters<typeof startApi>[0];

export function withFakeWorker(
  taskQueue: string,
  fake: FakeActivities,
  serverSettings: Parameters<typeof devServer>[0] = undefined,
): { env: () => TestWorkflowEnvironment } {
  let env: TestWorkflowEnvironment | undefined;
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;
  beforeAll(async () => {
    env = await devServer(serverSettings);
    worker = await Worker.create({
      ...WORKER_TUNING,
      connection: env.nativeConnection,
      taskQueue,
      workflowsPath: require.resolve('../../src/workflow-bundle'),
      activities: fake.activities(),
      shutdownGraceTime: '1s',
    });
    running = worker.run();
  });
  afterAll(async () => {
    worker?.shutdown();
    await running;
    await env?.teardown();
  });
  return { env: () => env! };
}

/**
 * `withFakeWorker` on meshflow's own task queue, and the HTTP API in front of it on a free
 * loopback port (quiet log). `api()` is the running API.
 */
export function withFakeApi(
  fake: FakeActivities,
  options: Pick<ApiOptions, 'tokens' | 'limits'>,
  serverSettings: Parameters<typeof devServer>[0] = undefined,
): { env: () => TestWorkflowEnvironment; api: () => RunningApi } {
  const rig = withFakeWorker(TASK_QUEUE, fake, serverSettings);
  let api: RunningApi | undefined;
  beforeAll(async () => {
    api = await startApi({
      client: rig.env().client,
      namespace: 'default',
      log: () => {},
      host: '127.0.0.1',
      port: 0,
      ...options,
    });
  });
  afterAll(async () => {
    await api?.close();
  });
  return { ...rig, api: () => api! };
}

/** Polls the mesh's status query (every 50 ms, 30 s at most) until `ok` holds, and expects that it did. */
export async function statusUntil(handle: WorkflowHandle, ok: (s: MeshStatus) => boolean): Promise<MeshStatus> {
  let s: MeshStatus = await handle.query(statusQuery);
  for (let i = 0; i < 600 && !ok(s); i++) {
    await sleep(50);
    s = await handle.query(statusQuery);
  }
  expect(ok(s)).toBe(true);
  return s;
}
