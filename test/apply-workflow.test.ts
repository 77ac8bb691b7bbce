// `apply` on the mesh workflow, against the Temporal dev server with the activities' TEST DOUBLE
// (each step "creates" a resource where the real one would: a cluster, objects in a cluster):
// a ready mesh grows by a cluster, shrinks back (unlinked first, then forgotten, then undone), a
// failing add is rolled back, a change that cannot be made in place is refused by field, one
// update runs at a time, and a teardown during an update ends it and undoes everything.
import { WorkflowUpdateFailedError, WorkflowUpdateStage } from '@temporalio/client';
import type { MeshSpec } from '../src/spec/schema';
import { parseMeshSpec } from '../src/spec/load';
import { applyUpdate, meshWorkflowId, specQuery, statusQuery, teardownSignal } from '../src/workflows/definitions';
import type { provisionMesh } from '../src/workflows/mesh';
import type { MeshStatus } from '../src/workflows/types';
import { FakeActivities, twoClusterYaml } from './helpers/fake-activities';
import { recordHistory } from './helpers/histories';
import { statusUntil, withFakeWorker } from './helpers/fake-worker';

const QUEUE = 'apply';
const fake = new FakeActivities();
const rig = withFakeWorker(QUEUE, fake);

const two = (name: string) => parseMeshSpec(twoClusterYaml(name, 'app: { sample: none }\n'));
const three = (name: string) =>
  parseMeshSpec(
    twoClusterYaml(name, 'app: { sample: none }\n').replace(
      '  - { name: west, provider: local, network: n2 }\n',
      '  - { name: west, provider: local, network: n2 }\n  - { name: south, provider: local, network: n3 }\n',
    ),
  );

async function startReady(spec: MeshSpec, script: Parameters<typeof fake.scripts.set>[1] = {}) {
  fake.scripts.set(spec.name, { realistic: true, ...script });
  const handle = await rig.env().client.workflow.start<typeof provisionMesh>('provisionMesh', {
    taskQueue: QUEUE,
    workflowId: meshWorkflowId(spec.name),
    args: [{ spec }],
  });
  await statusUntil(handle, (s) => s.phase === 'ready');
  return handle;
}

/** The clusters the ledger holds anything of or in. */
const ledgerClusters = (s: MeshStatus) =>
  new Set(
    s.ledger.flatMap((l) =>
      l.resource.type === 'cluster' || l.resource.type === 'objects' ? [l.resource.cluster] : [],
    ),
  );

const callsSince = (mesh: string, n: number) => fake.callsOf(mesh).slice(n);

test('two clusters grow to three and back: only what changes runs; unlinked, forgotten, then undone', async () => {
  const name = 'grow';
  const handle = await startReady(two(name));
  const before = fake.callsOf(name).length;

  const grown = await handle.executeUpdate(applyUpdate, { args: [{ spec: three(name) }] });
  expect(grown.update.state).toBe('applied');
  expect(grown.clusters).toEqual(['east', 'west', 'south']);
  const ran = callsSince(name, before);
  // The new cluster's steps and the links both ways with every primary; nothing of east-west again.
  for (const step of [
    'create-cluster:south',
    'cacerts:south',
    'control-plane:south',
    'eastwest-gateway:south',
    'expose-services:south',
    'link:south->east',
    'link:east->south',
    'link:south->west',
    'link:west->south',
    'verify',
  ])
    expect(ran).toContain(`run ${step}`);
  for (const kept of ['create-cluster:east', 'control-plane:west', 'link:east->west', 'link:west->east', 'root-ca'])
    expect(ran).not.toContain(`run ${kept}`);
  expect(ran.filter((c) => c.startsWith('undo '))).toEqual([]);
  let status = await handle.query(statusQuery);
  expect(status.phase).toBe('ready');
  expect(ledgerClusters(status)).toEqual(new Set(['east', 'west', 'south']));
  expect(status.conditions?.find((c) => c.type === 'Updating')).toMatchObject({ status: 'False' });
  expect(status.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True' });

  const mid = fake.callsOf(name).length;
  const shrunk = await handle.executeUpdate(applyUpdate, { args: [{ spec: two(name) }] });
  expect(shrunk.update.state).toBe('applied');
  expect(shrunk.clusters).toEqual(['east', 'west']);
  expect(shrunk.update.forgotten).toEqual([expect.objectContaining({ cluster: 'south' })]);
  const calls = callsSince(name, mid);
  const undone = calls.filter((c) => c.startsWith('undo ')).map((c) => c.slice(5));
  // The remote secrets of south in the staying primaries go first, then istiods forget it, then the cluster.
  const forget = calls.indexOf('forget south');
  expect(forget).toBeGreaterThan(-1);
  for (const link of ['link:south->east', 'link:south->west'])
    expect(calls.indexOf(`undo ${link}`)).toBeLessThan(forget);
  expect(calls.indexOf('undo create-cluster:south')).toBeGreaterThan(forget);
  // Nothing of east or west is undone; south's objects went with its cluster.
  expect(undone.sort()).toEqual(['create-cluster:south', 'link:south->east', 'link:south->west']);
  status = await handle.query(statusQuery);
  expect(ledgerClusters(status)).toEqual(new Set(['east', 'west']));
  expect(status.steps.map((s) => s.id).filter((id) => id.includes('south'))).toEqual([]);
  expect(status.updates?.map((u) => u.state)).toEqual(['applied', 'applied']);

  // The same spec again: accepted, nothing runs.
  const n = fake.callsOf(name).length;
  const same = await handle.executeUpdate(applyUpdate, { args: [{ spec: two(name) }] });
  expect(same.update).toMatchObject({ state: 'applied', summary: 'no change' });
  expect(callsSince(name, n)).toEqual([]);

  await handle.signal(teardownSignal);
  const end = await handle.result();
  expect(end.phase).toBe('deleted');
  expect(end.ledger).toEqual([]);
  await recordHistory(handle, 'v3-apply-add-remove');
});

test('a failing add is undone and the mesh stays as the previous spec had it, verified', async () => {
  const name = 'failadd';
  const handle = await startReady(two(name), { failAfterCreate: ['control-plane:south'] });
  const before = fake.callsOf(name).length;
  const out = await handle.executeUpdate(applyUpdate, { args: [{ spec: three(name) }] });
  expect(out.update.state).toBe('rolled-back');
  expect(out.update.error).toMatch(/control-plane:south.*injected failure.*undone/s);
  expect(out.clusters).toEqual(['east', 'west']);
  const calls = callsSince(name, before);
  // What south's steps made is undone (its objects with its cluster), and the mesh verified again.
  expect(calls).toContain('undo create-cluster:south');
  expect(calls.at(-1)).toBe('run verify');
  const status = await handle.query(statusQuery);
  expect(status.phase).toBe('ready');
  expect(ledgerClusters(status)).toEqual(new Set(['east', 'west']));
  expect(status.steps.every((s) => s.state === 'done')).toBe(true);
  expect(status.leftBehind).toEqual([]);
  await handle.signal(teardownSignal);
  expect((await handle.result()).ledger).toEqual([]);
  await recordHistory(handle, 'v3-apply-failed-rolled-back');
});

test('a change that cannot be made in place is refused before anything runs, naming the field', async () => {
  const name = 'refuse';
  const handle = await startReady(two(name));
  const moved = two(name);
  moved.clusters[1] = { ...moved.clusters[1], network: 'n9' };
  const before = fake.callsOf(name).length;
  const err = await handle.executeUpdate(applyUpdate, { args: [{ spec: moved }] }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  expect(String((err as WorkflowUpdateFailedError).cause?.message)).toMatch(
    /clusters\[1\]\.network: is n9, cluster west runs as n2.*--replace west/,
  );
  const renamed = { ...two(name), name: 'other' };
  const err2 = await handle.executeUpdate(applyUpdate, { args: [{ spec: renamed }] }).catch((e: unknown) => e);
  expect(String((err2 as WorkflowUpdateFailedError).cause?.message)).toMatch(/^name: is "other"/);
  expect(callsSince(name, before)).toEqual([]);
  expect((await handle.query(statusQuery)).updates ?? []).toEqual([]);
  await handle.signal(teardownSignal);
  await handle.result();
});

test('one update at a time; a teardown during an update ends it and undoes everything, its cluster too', async () => {
  const name = 'downmid';
  const handle = await startReady(two(name), { hangSteps: ['control-plane:south'] });
  const first = await handle.startUpdate(applyUpdate, {
    args: [{ spec: three(name) }],
    waitForStage: WorkflowUpdateStage.ACCEPTED,
  });
  const s = await statusUntil(handle, (x) =>
    x.steps.some((st) => st.id === 'control-plane:south' && st.state === 'running'),
  );
  expect(s.phase).toBe('updating');
  expect(s.conditions?.find((c) => c.type === 'Updating')).toMatchObject({ status: 'True', reason: 'Applying' });
  const second = await handle.executeUpdate(applyUpdate, { args: [{ spec: two(name) }] }).catch((e: unknown) => e);
  expect(String((second as WorkflowUpdateFailedError).cause?.message)).toMatch(
    new RegExp(`update ${first.updateId} \\(add south.*\\) has been running since .*one update at a time`),
  );
  await handle.signal(teardownSignal);
  const err = await first.result().catch((e: unknown) => e);
  expect(String((err as WorkflowUpdateFailedError).cause?.message)).toMatch(/teardown requested during the update/);
  const end = await handle.result();
  expect(end.phase).toBe('deleted');
  expect(end.ledger).toEqual([]);
  // Everything created is undone once: the root CA and the three clusters (their objects go with them).
  expect(fake.undosOf(name).sort()).toEqual([
    'create-cluster:east',
    'create-cluster:south',
    'create-cluster:west',
    'root-ca',
  ]);
  expect(fake.callsOf(name)).toContain('cancelled control-plane:south');
  await recordHistory(handle, 'v3-apply-down-during-update');
});

test('a changed step that fails half-way runs again as the previous spec had it, then verify', async () => {
  const name = 'failmove';
  const spec = parseMeshSpec(
    twoClusterYaml(name, 'app: { sample: helloworld, placement: { east: [v1], west: [v2] } }\n'),
  );
  // The deploy of east fails whenever it is asked for v2 there (the new placement), not for v1.
  const handle = await startReady(spec, {
    failIf: (req) => req.step.id === 'deploy-app:east' && req.spec.app.placement?.east?.includes('v2') === true,
  });
  const moved = structuredClone(spec);
  moved.app.placement = { east: ['v2'], west: ['v1'] };
  const before = fake.callsOf(name).length;
  const out = await handle.executeUpdate(applyUpdate, { args: [{ spec: moved }] });
  expect(out.update.state).toBe('rolled-back');
  expect(out.update.rerun.sort()).toEqual(['deploy-app:east', 'deploy-app:west']);
  const runs = callsSince(name, before).filter((c) => c.startsWith('run '));
  // Both deploys ran with the new placement (east failed), then again with the old one, then verify.
  expect(runs.filter((c) => c === 'run deploy-app:east')).toHaveLength(2);
  expect(runs.filter((c) => c === 'run deploy-app:west')).toHaveLength(2);
  expect(runs.at(-1)).toBe('run verify');
  const status = await handle.query(statusQuery);
  expect(status.phase).toBe('ready');
  expect(status.steps.filter((s) => s.state !== 'done')).toEqual([]);
  expect((await handle.query(specQuery)).app.placement).toEqual({ east: ['v1'], west: ['v2'] });
  await handle.signal(teardownSignal);
  expect((await handle.result()).ledger).toEqual([]);
});

test('--replace makes a cluster anew under its name: it goes first (unlinked, forgotten, undone)', async () => {
  const name = 'replace';
  const handle = await startReady(two(name));
  const next = two(name);
  next.clusters[1] = { ...next.clusters[1], network: 'n9' };
  const before = fake.callsOf(name).length;
  const out = await handle.executeUpdate(applyUpdate, { args: [{ spec: next, replace: ['west'] }] });
  expect(out.update).toMatchObject({ state: 'applied', summary: expect.stringMatching(/^replace west/) });
  expect(out.update.forgotten).toEqual([expect.objectContaining({ cluster: 'west' })]);
  const calls = callsSince(name, before);
  // The old west is gone before the new one is made; east's link to it is made again.
  expect(calls.indexOf('undo create-cluster:west')).toBeGreaterThan(-1);
  expect(calls.indexOf('undo create-cluster:west')).toBeLessThan(calls.indexOf('run create-cluster:west'));
  expect(calls.indexOf('forget west')).toBeLessThan(calls.indexOf('undo create-cluster:west'));
  for (const step of ['cacerts:west', 'control-plane:west', 'link:west->east', 'link:east->west'])
    expect(calls).toContain(`run ${step}`);
  for (const kept of ['create-cluster:east', 'control-plane:east', 'root-ca'])
    expect(calls).not.toContain(`run ${kept}`);
  expect((await handle.query(specQuery)).clusters.find((c) => c.name === 'west')?.network).toBe('n9');
  await handle.signal(teardownSignal);
  expect((await handle.result()).ledger).toEqual([]);
});
