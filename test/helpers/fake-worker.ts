// The rig of the workflow tests that run the real mesh workflow with the activities' TEST DOUBLE:
// a Temporal dev server and one worker on `taskQueue`, started before the file's tests and stopped
// after them. `env()` is the running environment (its client, its connection).
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { WORKER_TUNING } from '../../src/worker';
import type { FakeActivities } from './fake-activities';
import { devServer } from './temporal';

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
      workflowsPath: require.resolve('../../src/workflows'),
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
