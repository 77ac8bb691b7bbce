// Drift on the mesh workflow, against the Temporal dev server with the activities' TEST DOUBLE
// (its drift checks find what the test scripts, for the steps it names): what a check finds is
// repaired by running exactly the owning steps again, then verify, then a new baseline; with
// `repair: false` it is only reported; an object that is not the mesh's is reported and nothing
// runs; drift and apply are one at a time. The API's POST .../drift, its counter and the events
// stream's drift event.
import { WorkflowUpdateFailedError, WorkflowUpdateStage, type WorkflowHandle } from '@temporalio/client';
import { parseMeshSpec } from '../src/spec/load';
import { applyUpdate, driftUpdate, meshWorkflowId, statusQuery, teardownSignal } from '../src/workflows/definitions';
import type { provisionMesh } from '../src/workflows/mesh';
import type { MeshStatus } from '../src/workflows/types';
import { sleep } from '../src/util/net';
import { FakeActivities, type Script, twoClusterYaml } from './helpers/fake-activities';
import { recordHistory } from './helpers/histories';
import { statusUntil, withFakeWorker } from './helpers/fake-worker';
import { createApp } from '../src/api/app';
import { followMesh } from '../src/api/events';
import type { StatusView } from '../src/client';

const QUEUE = 'drift';
const fake = new FakeActivities();
const rig = withFakeWorker(QUEUE, fake);

const mesh = (name: string, drift = '') => parseMeshSpec(twoClusterYaml(name, `app: { sample: none }\n${drift}`));

async function startReady(name: string, drift = '', script: Script = {}) {
  fake.scripts.set(name, { realistic: true, ...script });
  const handle = await rig.env().client.workflow.start<typeof provisionMesh>('provisionMesh', {
    taskQueue: QUEUE,
    workflowId: meshWorkflowId(name),
    args: [{ spec: mesh(name, drift) }],
  });
  await statusUntil(handle, (s) => s.phase === 'ready');
  // The live loop takes the first baseline at once.
  for (let i = 0; i < 200 && !fake.driftCallsOf(name).includes('baseline'); i++) await sleep(50);
  expect(fake.driftCallsOf(name)).toEqual(['baseline']);
  return handle;
}

const drifted = (s: MeshStatus) => s.conditions?.find((c) => c.type === 'Drifted');

async function down(handle: WorkflowHandle) {
  await handle.signal(teardownSignal);
  const end = (await handle.result()) as MeshStatus;
  expect(end.phase).toBe('deleted');
  expect(end.ledger).toEqual([]);
}

test('what drifted is repaired by exactly the steps that own it, then verified and baselined again', async () => {
  const name = 'repaired';
  const handle = await startReady(name);
  // A remote secret is gone (its link made it) and the network label of west is wrong (verify says so).
  const script = fake.scripts.get(name)!;
  script.drift = [[{ step: 'link:east->west', cluster: 'west' }]];
  script.failChecks = [
    [{ name: 'network-label', cluster: 'west', status: 'failed', detail: 'istio-system has no network label' }],
  ];
  const before = fake.runsOf(name).length;
  const report = await handle.executeUpdate(driftUpdate);
  expect(report).toMatchObject({
    trigger: 'requested',
    state: 'repaired',
    repaired: ['cacerts:west', 'link:east->west'],
    items: [{ kind: 'missing', step: 'link:east->west', cluster: 'west' }],
    failedChecks: [{ name: 'network-label', cluster: 'west' }],
  });
  expect(report.error).toBeUndefined();
  // Verify with the check, then the two owners, then verify again: nothing else ran.
  const ran = fake.runsOf(name).slice(before);
  expect([ran[0], ran.slice(1, 3).sort(), ran[3], ran.length]).toEqual([
    'verify',
    ['cacerts:west', 'link:east->west'],
    'verify',
    4,
  ]);
  expect(fake.driftCallsOf(name)).toEqual(['baseline', 'check', 'baseline']);
  const s = await handle.query(statusQuery);
  expect(s.phase).toBe('ready');
  expect(s.drift).toEqual(report);
  expect(drifted(s)).toMatchObject({ status: 'False', reason: 'Repaired' });
  expect(s.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True' });
  expect(s.steps.every((st) => st.state === 'done')).toBe(true);
  // A step run again records what it applied once: the ledger has no second entry of it.
  expect(s.ledger.filter((l) => l.step === 'link:east->west')).toHaveLength(1);
  // The next check finds nothing.
  const clean = await handle.executeUpdate(driftUpdate);
  expect(clean).toMatchObject({ state: 'clean', items: [], failedChecks: [], repaired: [] });
  expect(drifted(await handle.query(statusQuery))).toMatchObject({ status: 'False', reason: 'NoDrift' });
  await down(handle);
  await recordHistory(handle, 'v4-drift-repaired');
});

test('with repair: false drift is only reported: Drifted is True and no step runs', async () => {
  const name = 'report';
  const handle = await startReady(name, 'drift: { repair: false }\n');
  fake.scripts.get(name)!.drift = [
    [
      { step: 'expose-services:east', cluster: 'east', kind: 'changed' },
      { step: 'link:west->east', cluster: 'east' },
    ],
  ];
  const before = fake.runsOf(name).length;
  const report = await handle.executeUpdate(driftUpdate);
  expect(report).toMatchObject({ state: 'drifted', repaired: [] });
  expect(report.items.map((i) => `${i.kind} ${i.step}`)).toEqual([
    'changed expose-services:east',
    'missing link:west->east',
  ]);
  expect(fake.runsOf(name).slice(before)).toEqual(['verify']); // the checks, nothing else
  expect(fake.driftCallsOf(name)).toEqual(['baseline', 'check']); // and no new baseline: the drift stays visible
  const s = await handle.query(statusQuery);
  expect(drifted(s)).toMatchObject({ status: 'True', reason: 'RepairOff' });
  expect(drifted(s)?.message).toMatch(/2 object\(s\) drifted, 0 check\(s\) failed.*reported only/);
  await down(handle);
});

test("an object that is no longer the mesh's is reported and never taken over: nothing runs", async () => {
  const name = 'foreign';
  const handle = await startReady(name);
  fake.scripts.get(name)!.drift = [[{ step: 'eastwest-gateway:west', cluster: 'west', kind: 'foreign' }]];
  const before = fake.runsOf(name).length;
  const report = await handle.executeUpdate(driftUpdate);
  expect(report).toMatchObject({ state: 'unrepaired', repaired: [], items: [{ kind: 'foreign' }] });
  expect(fake.runsOf(name).slice(before)).toEqual(['verify']);
  expect(drifted(await handle.query(statusQuery))).toMatchObject({ status: 'True', reason: 'NotRepaired' });
  await down(handle);
});

test('drift and apply are one at a time; drift is checked only on a ready mesh', async () => {
  const name = 'onebyone';
  const handle = await startReady(name, '', { hangSteps: ['control-plane:south'] });
  const three = parseMeshSpec(
    twoClusterYaml(name, 'app: { sample: none }\n').replace(
      '  - { name: west, provider: local, network: n2 }\n',
      '  - { name: west, provider: local, network: n2 }\n  - { name: south, provider: local, network: n3 }\n',
    ),
  );
  const update = await handle.startUpdate(applyUpdate, {
    args: [{ spec: three }],
    waitForStage: WorkflowUpdateStage.ACCEPTED,
  });
  await statusUntil(handle, (s) => s.steps.some((st) => st.id === 'control-plane:south' && st.state === 'running'));
  const refused = await handle.executeUpdate(driftUpdate).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
  expect(String((refused as WorkflowUpdateFailedError).cause?.message)).toMatch(
    new RegExp(`update ${update.updateId} \\(add south.*\\) has been running since .*one change at a time`),
  );
  expect(fake.driftCallsOf(name)).toEqual(['baseline']);
  await handle.signal(teardownSignal);
  await update.result().catch(() => undefined);
  await handle.result();
});

test('an apply waits for a drift check in progress: refused while it runs', async () => {
  const name = 'applywait';
  let release!: () => void;
  const handle = await startReady(name, '', { holdDrift: new Promise<void>((r) => (release = r)) });
  const check = handle.executeUpdate(driftUpdate);
  for (let i = 0; i < 200 && !fake.driftCallsOf(name).includes('check'); i++) await sleep(50);
  const refused = await handle.executeUpdate(applyUpdate, { args: [{ spec: mesh(name) }] }).catch((e: unknown) => e);
  expect(String((refused as WorkflowUpdateFailedError).cause?.message)).toMatch(
    /a drift check of mesh applywait has been running since .*: apply waits for it/,
  );
  release();
  expect((await check).state).toBe('clean');
  await down(handle);
});

test('a baseline that fails is reported and taken again; the mesh stays ready', async () => {
  const name = 'nobase';
  const handle = await startReady(name, '', { failBaselines: 1 });
  const s = await statusUntil(handle, (x) => x.drift?.error !== undefined);
  expect(s.phase).toBe('ready');
  expect(s.drift?.error).toMatch(/^baseline: PermanentError: injected/);
  // A check asked for takes the baseline it lacks first.
  const report = await handle.executeUpdate(driftUpdate);
  expect(report).toMatchObject({ state: 'clean' });
  expect(report.error).toBeUndefined();
  expect(fake.driftCallsOf(name)).toEqual(['baseline', 'baseline', 'check']);
  await down(handle);
});

test('POST /v1/meshes/{name}/drift answers the report, counted by kind in the metrics; 409 once ended', async () => {
  const name = 'api';
  const handle = await startReady(name, 'drift: { repair: false }\n');
  fake.scripts.get(name)!.drift = [
    [
      { step: 'link:west->east', cluster: 'east' },
      { step: 'cacerts:east', cluster: 'east', kind: 'changed' },
      { step: 'expose-services:east', cluster: 'east', kind: 'changed' },
    ],
  ];
  const { app } = createApp({ client: rig.env().client, namespace: 'default', tokens: [], log: () => {} });
  const res = await app.request(`/v1/meshes/${name}/drift`, { method: 'POST' });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { name: string; drift: { state: string; items: unknown[] } };
  expect(body).toMatchObject({ name, drift: { state: 'drifted' } });
  expect(body.drift.items).toHaveLength(3);
  // A status read of the same report does not count it again.
  expect((await app.request(`/v1/meshes/${name}`)).status).toBe(200);
  const metrics = await (await app.request('/metrics')).text();
  expect(metrics).toMatch(/^meshflow_drift_items_total\{mesh="api",kind="changed"\} 2$/m);
  expect(metrics).toMatch(/^meshflow_drift_items_total\{mesh="api",kind="missing"\} 1$/m);
  await handle.signal(teardownSignal);
  await handle.result();
  const ended = await app.request(`/v1/meshes/${name}/drift`, { method: 'POST' });
  expect(ended.status).toBe(409);
});

test('an event stream sends a drift event when the status carries a new drift report', async () => {
  const base = { phase: 'ready', steps: [] } as unknown as StatusView;
  const report = { checkedAt: 't1', state: 'repaired' } as StatusView['drift'];
  const polls = [base, { ...base, drift: report }, { ...base, drift: report }, { ...base, phase: 'deleted' }];
  const sent: string[] = [];
  await followMesh({
    first: base,
    poll: async () => polls.shift() as StatusView,
    send: async (event) => void sent.push(event),
    untilReady: false,
    signal: new AbortController().signal,
    intervalMs: 1,
  });
  expect(sent).toEqual(['status', 'drift', 'phase', 'end']);
});
