// Cancelling a mesh while it provisions, on the Temporal dev server (the Java time-skipping server
// answers the cancel of a scheduled, not yet started activity in a way the SDK's state machines
// reject, so cancellation semantics are checked against the real server).
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { WorkflowFailedError } from '@temporalio/client';
import { parseMeshSpec } from '../src/spec/load';
import { meshWorkflowId, statusQuery } from '../src/workflows/definitions';
import type { provisionMesh } from '../src/workflows/mesh';
import { buildPlan } from '../src/plan/plan';
import { sleep } from '../src/util/net';
import { FakeActivities, expectUndoneInReverse } from './helpers/fake-activities';
import { devServer } from './helpers/temporal';
import { WORKER_TUNING } from '../src/worker';

let env: TestWorkflowEnvironment;
const fake = new FakeActivities();

beforeAll(async () => {
  env = await devServer();
});

afterAll(async () => {
  await env?.teardown();
});

test('cancelling while provisioning compensates what was created, then reports the cancel', async () => {
  const spec = parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: cancel
clusters:
  - { name: east, provider: local, network: n1 }
  - { name: west, provider: local, network: n2 }
`);
  fake.scripts.set('cancel', { hangSteps: ['control-plane:west'] });
  const worker = await Worker.create({
    ...WORKER_TUNING,
    connection: env.nativeConnection,
    taskQueue: 'cancel',
    workflowsPath: require.resolve('../src/workflows'),
    activities: fake.activities(),
    shutdownGraceTime: '1s',
  });
  await worker.runUntil(async () => {
    const handle = await env.client.workflow.start<typeof provisionMesh>('provisionMesh', { taskQueue: 'cancel', workflowId: meshWorkflowId('cancel'), args: [{ spec }] });
    for (let i = 0; i < 400 && !fake.callsOf('cancel').includes('run control-plane:west'); i++) await sleep(50);
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
    const status = await handle.query(statusQuery);
    expect(status.phase).toBe('deleted');
    expect(status.error).toBe('cancelled');
    expect(status.ledger).toEqual([]);
    // Exactly what had been created is undone, each step before the steps it depended on.
    const runs = fake.callsOf('cancel').filter((c) => c.startsWith('run ') && c !== 'run control-plane:west' && c !== 'run verify').map((c) => c.slice(4));
    const undos = fake.callsOf('cancel').filter((c) => c.startsWith('undo ')).map((c) => c.slice(5));
    expectUndoneInReverse(undos, runs, buildPlan(spec));
  });
});
