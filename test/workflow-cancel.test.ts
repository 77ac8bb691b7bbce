// Stopping a mesh while it provisions, on the Temporal dev server (the Java time-skipping server
// answers the cancel of a scheduled, not yet started activity in a way the SDK's state machines
// reject, so cancellation semantics are checked against the real server): a workflow cancel,
// `down` (the teardown signal) and TTL expiry each cancel the running step, which sees the cancel
// within seconds, and compensation undoes exactly what was created, whatever onFailure says.
import { WorkflowFailedError } from '@temporalio/client';
import type { MeshSpec } from '../src/spec/schema';
import { extendUpdate, meshWorkflowId, statusQuery, teardownSignal } from '../src/workflows/definitions';
import type { provisionMesh } from '../src/workflows/mesh';
import { buildPlan } from '../src/plan/plan';
import { sleep } from '../src/util/net';
import { FakeActivities, expectUndoneInReverse, twoClusterMesh } from './helpers/fake-activities';
import { recordHistory } from './helpers/histories';
import { withFakeWorker } from './helpers/fake-worker';

const QUEUE = 'cancel';
const fake = new FakeActivities();
const rig = withFakeWorker(QUEUE, fake);

const spec = twoClusterMesh;

const runs = (mesh: string) => fake.runsOf(mesh);
const undos = (mesh: string) => fake.undosOf(mesh);
/** What the steps that ran created: every step that ran to its end or failed after creating (not verify). */
const created = (mesh: string) =>
  runs(mesh).filter((id) => id !== 'verify' && !fake.callsOf(mesh).includes(`cancelled ${id}`));
const expectUndoneInReverseOf = (mesh: string, steps: string[], s: MeshSpec) =>
  expectUndoneInReverse(undos(mesh), steps, buildPlan(s));
const start = (s: MeshSpec) =>
  rig.env().client.workflow.start<typeof provisionMesh>('provisionMesh', {
    taskQueue: QUEUE,
    workflowId: meshWorkflowId(s.name),
    args: [{ spec: s }],
  });

/** Starts a mesh whose control-plane:west step runs until cancelled, and waits until it runs. */
async function startHanging(s: MeshSpec) {
  fake.scripts.set(s.name, { hangSteps: ['control-plane:west'] });
  const handle = await rig.env().client.workflow.start<typeof provisionMesh>('provisionMesh', {
    taskQueue: QUEUE,
    workflowId: meshWorkflowId(s.name),
    args: [{ spec: s }],
  });
  for (let i = 0; i < 400 && !fake.callsOf(s.name).includes('run control-plane:west'); i++) await sleep(50);
  expect(fake.callsOf(s.name)).toContain('run control-plane:west');
  return handle;
}

/** Exactly what had been created is undone, each step before the steps it depended on; the hung step saw its cancel. */
function expectCompensated(s: MeshSpec): void {
  const calls = fake.callsOf(s.name);
  const runs = calls
    .filter((c) => c.startsWith('run ') && c !== 'run control-plane:west' && c !== 'run verify')
    .map((c) => c.slice(4));
  const undos = calls.filter((c) => c.startsWith('undo ')).map((c) => c.slice(5));
  expectUndoneInReverse(undos, runs, buildPlan(s));
  expect(calls).toContain('cancelled control-plane:west');
}

test('cancelling while provisioning compensates what was created, then reports the cancel', async () => {
  const s = spec('cancel');
  const handle = await startHanging(s);
  await handle.cancel();
  await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
  const status = await handle.query(statusQuery);
  expect(status.phase).toBe('deleted');
  expect(status.error).toBe('cancelled');
  expect(status.ledger).toEqual([]);
  expectCompensated(s);
});

test('down while provisioning cancels the running step within seconds and undoes everything, even with onFailure: keep', async () => {
  const s = spec('down-early', 'onFailure: keep');
  const handle = await startHanging(s);
  const t0 = Date.now();
  await handle.signal(teardownSignal);
  const final = await handle.result(); // `down --wait` gets the final status, not an error
  expect(Date.now() - t0).toBeLessThan(10_000);
  expect(final.phase).toBe('deleted');
  expect(final.error).toBe('teardown requested while provisioning');
  expect(final.ledger).toEqual([]);
  expect(final.steps.find((x) => x.id === 'control-plane:west')).toMatchObject({
    state: 'failed',
    lastError: expect.stringContaining('cancelled'),
  });
  expectCompensated(s);
  await recordHistory(handle, 'v2-down-while-provisioning');
});

test('a TTL that expires while provisioning cancels the running step and compensates', async () => {
  const s = { ...spec('expire-early'), ttl: '4s' };
  const handle = await startHanging(s);
  const final = await handle.result();
  expect(final.phase).toBe('deleted');
  expect(final.error).toContain('expired while it was provisioning');
  expectCompensated(s);
  await recordHistory(handle, 'v2-expired-while-provisioning');
});

test('extend while provisioning moves the deadline from the TTL the mesh would have had', async () => {
  const s = spec('extend-early', 'ttl: 1h');
  const handle = await startHanging(s);
  const before = await handle.query(statusQuery);
  expect(Date.parse(before.expiresAt!) - Date.parse(before.startedAt)).toBe(3_600_000);
  const extended = await handle.executeUpdate(extendUpdate, { args: ['2h'] });
  expect(Date.parse(extended) - Date.parse(before.startedAt)).toBe(3 * 3_600_000);
  await handle.signal(teardownSignal);
  expect((await handle.result()).phase).toBe('deleted');
});

test('a failing step cancels the steps beside it before compensation, which undoes what each made', async () => {
  const s = spec('sibling-fails');
  // create-cluster:west runs until cancelled; cacerts:east, which starts later, fails.
  fake.scripts.set(s.name, { hangSteps: ['create-cluster:west'], failSteps: ['cacerts:east'] });
  const handle = await rig.env().client.workflow.start<typeof provisionMesh>('provisionMesh', {
    taskQueue: QUEUE,
    workflowId: meshWorkflowId(s.name),
    args: [{ spec: s }],
  });
  await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
  const status = await handle.query(statusQuery);
  expect(status.phase).toBe('deleted');
  expect(status.error).toContain('step cacerts:east: PermanentError: injected failure in cacerts:east');
  expect(status.steps.find((x) => x.id === 'create-cluster:west')).toMatchObject({
    state: 'failed',
    lastError: 'cancelled: step cacerts:east failed',
  });
  const calls = fake.callsOf(s.name);
  expect(calls).toContain('cancelled create-cluster:west');
  // Compensation started after the cancelled step had answered, and undid what the others made.
  expect(calls.indexOf('cancelled create-cluster:west')).toBeLessThan(calls.findIndex((c) => c.startsWith('undo ')));
  expect(calls.filter((c) => c.startsWith('undo ')).sort()).toEqual(
    ['undo create-cluster:east', 'undo root-ca'].sort(),
  );
  expect(status.ledger).toEqual([]);
  await recordHistory(handle, 'v3-failure-cancels-siblings');
});

test.each(buildPlan(spec('x', 'ttl: 2h')).steps.map((s) => s.id))(
  'a failure in %s undoes exactly what earlier steps created, in reverse',
  async (failing) => {
    const mesh = `f-${failing.replace(/[^a-z0-9]+/g, '-')}`.slice(0, 40).replace(/-$/, '');
    fake.scripts.set(mesh, { failSteps: [failing] });
    const s = spec(mesh, 'ttl: 2h');
    const handle = await start(s);
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause).toMatchObject({
      type: 'MeshProvisioningFailed',
      message: expect.stringContaining(`step ${failing}`),
    });
    expectUndoneInReverseOf(
      mesh,
      created(mesh).filter((id) => id !== failing),
      s,
    );
    const status = await handle.query(statusQuery);
    expect(status.phase).toBe('deleted');
    if (mesh === 'f-control-plane-west') await recordHistory(handle, 'v3-failed-and-compensated');
    expect(status.steps.find((s) => s.id === failing)).toMatchObject({
      state: 'failed',
      lastError: expect.stringContaining('injected failure'),
    });
  },
);

test('a step that fails after creating something reports it in its trace, and it is undone', async () => {
  fake.scripts.set('trace', { failAfterCreate: ['control-plane:west'] });
  const s = spec('trace', 'ttl: 2h');
  const handle = await start(s);
  await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
  // control-plane:west's own resource is undone too, although the step failed.
  expectUndoneInReverseOf('trace', created('trace'), s);
  expect((await handle.query(statusQuery)).ledger).toEqual([]);
});
