// The upgrade on the mesh workflow, against the Temporal dev server with the activities' TEST DOUBLE
// (its upgrade activities record "<what> <cluster> <revision>", an install leaves one marker the
// ledger holds): each wave installs the new revision, switches its clusters, verifies; when every
// wave passed, the old revision goes, the control planes and gateways are rendered again, verify
// runs and the spec says the new version. A switch that fails rolls back every wave made; an
// approved upgrade waits between waves for continue or abort; bad requests are refused before
// anything runs; a teardown while it waits removes both revisions.
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { innermostMessage } from '../src/api/errors';
import { parseMeshSpec } from '../src/spec/load';
import type { MeshSpec } from '../src/spec/schema';
import {
  meshWorkflowId,
  specQuery,
  statusQuery,
  teardownSignal,
  upgradeDecisionUpdate,
  upgradeUpdate,
} from '../src/workflows/definitions';
import type { provisionMesh } from '../src/workflows/mesh';
import type { MeshStatus, UpgradeRequest } from '../src/workflows/types';
import { FakeActivities, type Script, twoClusterYaml } from './helpers/fake-activities';
import { statusUntil, withFakeWorker } from './helpers/fake-worker';
import { recordHistory } from './helpers/histories';

const fake = new FakeActivities();
const QUEUE = 'upgrade-workflow';
const rig = withFakeWorker(QUEUE, fake);

async function startReady(name: string, script: Script = {}, extra = 'app: { sample: none }\n') {
  fake.scripts.set(name, script);
  const handle = await rig.env().client.workflow.start<typeof provisionMesh>('provisionMesh', {
    taskQueue: QUEUE,
    workflowId: meshWorkflowId(name),
    args: [{ spec: parseMeshSpec(twoClusterYaml(name, `${extra}istio: { version: 1.30.8 }\n`)) }],
  });
  await statusUntil(handle, (s) => s.phase === 'ready');
  return handle;
}

const upgrade = (handle: WorkflowHandle, req: UpgradeRequest) => handle.executeUpdate(upgradeUpdate, { args: [req] });
const refusal = (p: Promise<unknown>) =>
  p.then(
    () => 'accepted',
    (err: Error) => {
      expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
      return innermostMessage(err);
    },
  );

async function down(handle: WorkflowHandle) {
  await handle.signal(teardownSignal);
  const end = (await handle.result()) as MeshStatus;
  expect([end.phase, end.ledger, end.leftBehind]).toEqual(['deleted', [], []]);
  return end;
}

test('an upgrade runs wave by wave, removes the old revision, renders the control planes again, verifies', async () => {
  const name = 'upg-ok';
  const handle = await startReady(name);
  const mark = fake.callsOf(name).length;
  const out = await upgrade(handle, { to: '1.31.4' });
  expect(out.update).toMatchObject({
    state: 'applied',
    summary: 'upgrade Istio 1.30.8 (revision default) to 1.31.4 (revision 1-31-4) in 2 wave(s): east, west',
  });
  const calls = fake.callsOf(name).slice(mark);
  // Wave by wave: install, switch, verify; then the old revision's istiods stop, then the control
  // planes and east-west gateways are rendered again (in place), then a last verify.
  expect(calls.slice(0, 6)).toEqual([
    'install-revision east 1-31-4',
    'switch east 1-31-4',
    'run verify',
    'install-revision west 1-31-4',
    'switch west 1-31-4',
    'run verify',
  ]);
  const rest = calls.slice(6);
  expect(rest.filter((c) => c.startsWith('stop-revision')).sort()).toEqual([
    'stop-revision east default',
    'stop-revision west default',
  ]);
  expect(rest.filter((c) => c.startsWith('run ')).sort()).toEqual([
    'run control-plane:east',
    'run control-plane:west',
    'run eastwest-gateway:east',
    'run eastwest-gateway:west',
    'run verify',
  ]);
  expect(rest.at(-1)).toBe('run verify');
  const s = await handle.query(statusQuery);
  expect(s.phase).toBe('ready');
  expect(s.upgrade).toBeUndefined();
  // The new revision's objects are the control-plane steps' now: none are left under an upgrade.
  expect(s.ledger.filter((l) => l.step.startsWith('upgrade:'))).toEqual([]);
  expect(s.ledger.filter((l) => l.resource.type === 'file' && l.resource.path.startsWith('revision:'))).toEqual([
    expect.objectContaining({ step: 'control-plane:east' }),
    expect.objectContaining({ step: 'control-plane:west' }),
  ]);
  expect(((await handle.query(specQuery)) as MeshSpec).istio).toMatchObject({ version: '1.31.4', revision: '1-31-4' });

  // Again, to another revision: the old one is now 1-31-4, and waves may be given.
  const again = await upgrade(handle, { to: '1.30.8', waves: [['west', 'east']] });
  expect(again.update).toMatchObject({
    state: 'applied',
    summary: 'upgrade Istio 1.31.4 (revision 1-31-4) to 1.30.8 (revision 1-30-8) in 1 wave(s): west+east',
  });
  const undone = await down(handle);
  // Every revision marker the mesh held went with the teardown.
  expect(fake.callsOf(name).filter((c) => c.startsWith('undo revision:'))).toEqual(
    expect.arrayContaining(['undo revision:1-30-8:east', 'undo revision:1-30-8:west']),
  );
  expect(undone.updates?.map((u) => u.state)).toEqual(['applied', 'applied']);
  await recordHistory(handle, 'v6-upgrade');
});

test('a wave that fails rolls back every wave made: the mesh stays ready on the old revision', async () => {
  const name = 'upg-fail';
  const handle = await startReady(name, { failSwitch: ['west'] });
  const mark = fake.callsOf(name).length;
  const out = await upgrade(handle, { to: '1.31.4' });
  expect(out.update.state).toBe('rolled-back');
  expect(out.update.error).toMatch(/^wave 2 \(west\) failed: west: .*not injected by revision 1-31-4/);
  expect(out.update.error).toMatch(/rolled back: every cluster runs Istio 1\.30\.8 \(revision default\) again$/);
  const calls = fake.callsOf(name).slice(mark);
  const back = calls.slice(calls.indexOf('switch west 1-31-4') + 1);
  expect(back.filter((c) => c.startsWith('switch')).sort()).toEqual(['switch east default', 'switch west default']);
  expect(back.filter((c) => c.startsWith('undo')).sort()).toEqual([
    'undo revision:1-31-4:east',
    'undo revision:1-31-4:west',
  ]);
  expect(back.filter((c) => c.startsWith('stop-revision')).sort()).toEqual([
    'stop-revision east 1-31-4',
    'stop-revision west 1-31-4',
  ]);
  expect(back.at(-1)).toBe('run verify');
  const s = await handle.query(statusQuery);
  expect(s.phase).toBe('ready');
  expect(s.ledger.filter((l) => l.step.startsWith('upgrade:'))).toEqual([]);
  expect(((await handle.query(specQuery)) as MeshSpec).istio.version).toBe('1.30.8');
  await down(handle);
  await recordHistory(handle, 'v6-upgrade-rolled-back');
});

test('approve each: the upgrade waits between waves; abort rolls back; bad requests are refused first', async () => {
  const name = 'upg-approve';
  const handle = await startReady(name);
  // Refused before anything runs, each naming what is wrong.
  expect(await refusal(upgrade(handle, { to: '1.29.1' }))).toMatch(
    /"1\.29\.1" is not a version meshflow pins a build of: a patch release of 1\.30, 1\.31/,
  );
  expect(await refusal(upgrade(handle, { to: '1.30.8' }))).toMatch(/runs Istio 1\.30\.8 already/);
  expect(await refusal(upgrade(handle, { to: '1.31.4', waves: [['east']] }))).toMatch(
    /every primary must be in a wave: west is in none/,
  );
  expect(await refusal(upgrade(handle, { to: '1.31.4', waves: [['east'], ['east', 'west']] }))).toMatch(
    /east is in two waves/,
  );
  expect(await refusal(handle.executeUpdate(upgradeDecisionUpdate, { args: ['continue'] }))).toMatch(
    /has no upgrade in progress/,
  );
  expect(fake.callsOf(name).some((c) => c.includes('revision'))).toBe(false);

  const running = upgrade(handle, { to: '1.31.4', approveEach: true });
  const waiting = await statusUntil(handle, (s) => s.upgrade?.stage === 'awaiting-approval');
  expect(waiting.upgrade).toMatchObject({ wave: 0, passed: 1, waves: [['east'], ['west']], approveEach: true });
  expect(waiting.conditions?.find((c) => c.type === 'Updating')).toMatchObject({
    status: 'True',
    reason: 'AwaitingApproval',
    message: expect.stringContaining(`meshflow upgrade ${name} --continue`),
  });
  // One update at a time, and the decision is continue or abort.
  expect(await refusal(upgrade(handle, { to: '1.31.4' }))).toMatch(/one update at a time/);
  expect(await refusal(handle.executeUpdate(upgradeDecisionUpdate, { args: ['maybe' as 'continue'] }))).toMatch(
    /continue or abort/,
  );

  expect(await handle.executeUpdate(upgradeDecisionUpdate, { args: ['abort'] })).toBe(
    'rolling back the 1 wave(s) made',
  );
  const out = await running;
  expect(out.update.state).toBe('rolled-back');
  expect(out.update.error).toMatch(/^aborted after wave 1 of 2; rolled back/);
  expect(fake.callsOf(name).filter((c) => c.includes(' west 1-31-4'))).toEqual([]); // the second wave never ran
  expect((await handle.query(statusQuery)).phase).toBe('ready');
  await down(handle);
  await recordHistory(handle, 'v6-upgrade-aborted');
});

test('a teardown while an upgrade waits for approval removes both revisions', async () => {
  const name = 'upg-down';
  const handle = await startReady(name);
  const running = upgrade(handle, { to: '1.31.4', approveEach: true }).catch((err: Error) => innermostMessage(err));
  await statusUntil(handle, (s) => s.upgrade?.stage === 'awaiting-approval');
  const end = await down(handle);
  expect(await running).toMatch(/teardown requested during the upgrade/);
  expect(end.updates?.at(-1)?.state).toBe('cancelled');
  expect(fake.callsOf(name)).toContain('undo revision:1-31-4:east');
});
