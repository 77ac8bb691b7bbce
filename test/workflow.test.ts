// provisionMesh's logic on the time-skipping server, with the activities replaced by a recording
// test double: TTL expiry, extend, teardown, undo failures, onFailure: keep. Failures while steps
// run beside the failing one cancel those steps, and cancellation is tested on the dev server
// (workflow-cancel.test.ts, failure at every step included): the Java time-skipping server answers
// the cancel of a scheduled, not yet started activity in a way the SDK's state machines reject.
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { buildPlan } from '../src/plan/plan';
import type { MeshSpec } from '../src/spec/schema';
import { extendUpdate, meshWorkflowId, statusQuery, teardownSignal, verifyUpdate } from '../src/workflows/definitions';
import type { provisionMesh } from '../src/workflows/mesh';
import type { CheckResult, MeshStatus } from '../src/workflows/types';
import { sleep } from '../src/util/net';
import {
  FakeActivities,
  expectUndoneInReverse as expectUndoneInReverseOrder,
  twoClusterMesh,
} from './helpers/fake-activities';
import { recordHistory } from './helpers/histories';
import { timeSkippingServer } from './helpers/temporal';

const TASK_QUEUE = 'workflow-logic';
let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
const fake = new FakeActivities();

beforeAll(async () => {
  env = await timeSkippingServer();
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowsPath: require.resolve('../src/workflow-bundle'),
    activities: fake.activities(),
    shutdownGraceTime: '1s',
  });
  running = worker.run();
});

afterAll(async () => {
  // Release 2's histories (release 1's stay as they were recorded): see helpers/histories.ts.
  for (const [mesh, file] of [
    ['ttl', 'v2-ready-then-expired'],
    ['stuck', 'v2-undo-failure-reported'],
    ['renew', 'v2-tokens-renewed-and-extended'],
    ['vfy', 'v2-verified-on-request'],
    // Release 8: the same run with checks named by code (the verify update's argument).
    ['vfy', 'v8-verified-by-code'],
    ['keep', 'v2-kept-then-down'],
    ['lanes', 'v2-undo-lanes'],
  ]) {
    await recordHistory(env.client.workflow.getHandle(meshWorkflowId(mesh)), file);
  }
  worker?.shutdown();
  await running;
  await env?.teardown();
});

const spec = (name: string, extra = ''): MeshSpec => twoClusterMesh(name, `ttl: 2h\n${extra}`);

function start(s: MeshSpec) {
  return env.client.workflow.start<typeof provisionMesh>('provisionMesh', {
    taskQueue: TASK_QUEUE,
    workflowId: meshWorkflowId(s.name),
    args: [{ spec: s }],
  });
}

async function untilPhase(mesh: string, phase: string): Promise<MeshStatus> {
  const handle = env.client.workflow.getHandle(meshWorkflowId(mesh));
  for (let i = 0; i < 200; i++) {
    const s = await handle.query(statusQuery);
    if (s.phase === phase) return s;
    await sleep(50);
  }
  throw new Error(`mesh ${mesh} never reached ${phase}`);
}

const runs = (mesh: string) => fake.runsOf(mesh);
const undos = (mesh: string) => fake.undosOf(mesh);
const created = (mesh: string) => runs(mesh).filter((id) => id !== 'verify');

function expectUndoneInReverse(mesh: string, steps: string[]) {
  expectUndoneInReverseOrder(undos(mesh), steps, buildPlan(spec(mesh)));
}

test('a ready mesh is torn down when its TTL expires, undoing everything newest first', async () => {
  const handle = await start(spec('ttl'));
  const ready = await untilPhase('ttl', 'ready');
  // The TTL runs from the start: a mesh never outlives it, not even while it provisions.
  expect(Date.parse(ready.expiresAt!) - Date.parse(ready.startedAt)).toBe(2 * 3_600_000);
  const final = await handle.result(); // time skips to the deadline
  expect(final.phase).toBe('deleted');
  expectUndoneInReverse('ttl', created('ttl'));
  expect(final.ledger).toEqual([]);
  expect(final.steps.filter((s) => s.kind !== 'verify').every((s) => s.state === 'undone')).toBe(true);
  // Independent steps ran in parallel: both clusters were being created before either cacerts step.
  expect(runs('ttl').slice(0, 3).sort()).toEqual(['create-cluster:east', 'create-cluster:west', 'root-ca']);
});

test('extend moves the deadline; bad durations are refused with the reason', async () => {
  const handle = await start(spec('ext'));
  const ready = await untilPhase('ext', 'ready');
  const extended = await handle.executeUpdate(extendUpdate, { args: ['3h'] });
  expect(Date.parse(extended) - Date.parse(ready.expiresAt!)).toBe(3 * 3_600_000);
  for (const [bad, reason] of [
    ['-1h', 'not a positive duration'],
    ['0s', 'not a positive duration'],
    ['soon', 'not a positive duration'],
    ['40d', 'at most 30d'],
  ]) {
    await expect(handle.executeUpdate(extendUpdate, { args: [bad] })).rejects.toMatchObject({
      cause: { message: expect.stringContaining(reason) },
    });
  }
  const t0 = await env.currentTimeMs();
  const final = await handle.result();
  expect(final.phase).toBe('deleted');
  // Torn down no earlier than the extended deadline (2h + 3h after ready).
  expect((await env.currentTimeMs()) - t0).toBeGreaterThanOrEqual(5 * 3_600_000 - 60_000);
});

test('reader tokens are renewed before they expire for as long as the mesh lives, extend included', async () => {
  fake.scripts.set('renew', { tokenLifetimeMs: 45 * 60_000 });
  const handle = await start(spec('renew'));
  await untilPhase('renew', 'ready');
  await handle.executeUpdate(extendUpdate, { args: ['1h'] });
  const final = await handle.result();
  expect(final.phase).toBe('deleted');
  const tornDownAt = Date.parse(final.expiresAt!);
  for (const step of ['link:east->west', 'link:west->east']) {
    const tokens = (fake.tokens.get('renew') ?? [])
      .filter((t) => t.step === step)
      .sort((a, b) => a.issuedAt - b.issuedAt);
    // 3h of mesh, renewed every 30 min (two thirds of 45 min); the last one outlives the mesh.
    expect(tokens).toHaveLength(6);
    tokens.slice(1).forEach((t, i) => expect(t.issuedAt).toBeLessThan(tokens[i].expiresAt));
    expect(tokens[tokens.length - 1].expiresAt).toBeGreaterThan(tornDownAt);
  }
  // Renewal re-applies the same secret: it is in the ledger, and undone, once.
  expect(
    undos('renew')
      .filter((u) => u.startsWith('link:'))
      .sort(),
  ).toEqual(['link:east->west', 'link:west->east']);
});

test('verify re-runs the checks of a ready mesh and refuses other phases', async () => {
  const handle = await start(spec('vfy'));
  await untilPhase('vfy', 'ready');
  // A client of an earlier release sends no argument: every check runs.
  const checks = await handle.executeUpdate<CheckResult[], []>('verify');
  expect(checks).toEqual([{ name: 'same-root', status: 'passed', detail: 'fake, run 2' }]);
  const status = await handle.query(statusQuery);
  expect(status.checks).toEqual(checks);
  expect(status.verifiedAt).toBeDefined();
  // Some checks by code: only they run; their results take the place of the earlier ones, the rest stay.
  const label = { code: 'MF0201', name: 'network-label', status: 'passed', detail: 'fake, run 3' };
  expect(await handle.executeUpdate(verifyUpdate, { args: [{ only: ['MF0201'] }] })).toEqual([label]);
  expect((await handle.query(statusQuery)).checks).toEqual([...checks, label]);
  const root = { code: 'MF0102', name: 'same-root', status: 'passed', detail: 'fake, run 4' };
  expect(await handle.executeUpdate(verifyUpdate, { args: [{ only: ['MF0102'] }] })).toEqual([root]);
  expect((await handle.query(statusQuery)).checks).toEqual([root, label]);
  await expect(handle.executeUpdate(verifyUpdate, { args: [{ only: ['MF9999'] }] })).rejects.toThrow(
    expect.objectContaining({
      cause: expect.objectContaining({ message: expect.stringContaining('no check MF9999') }),
    }),
  );
  await handle.signal(teardownSignal);
  await handle.result();
  await expect(handle.executeUpdate(verifyUpdate, { args: [{}] })).rejects.toThrow();
});

test('teardown signal tears a ready mesh down at once', async () => {
  const handle = await start(spec('down'));
  await untilPhase('down', 'ready');
  await handle.signal(teardownSignal);
  const final = await handle.result();
  expect(final.phase).toBe('deleted');
  expectUndoneInReverse('down', created('down'));
});

test('an undo that keeps failing is reported, not dropped, and the rest is still undone', async () => {
  fake.scripts.set('stuck', { failUndo: ['cacerts:east'] });
  const handle = await start(spec('stuck'));
  await untilPhase('stuck', 'ready');
  await handle.signal(teardownSignal);
  const final = await handle.result();
  expect(final.phase).toBe('failed');
  expect(final.leftBehind).toEqual([
    { resource: { type: 'file', path: 'cacerts:east' }, error: expect.stringContaining('injected undo failure') },
  ]);
  expect(final.ledger.map((l) => l.step)).toEqual(['cacerts:east']);
  expectUndoneInReverse('stuck', created('stuck'));
  expect(final.steps.find((s) => s.id === 'cacerts:east')?.state).toBe('undo-failed');
});

test('onFailure: keep keeps everything, says what was kept, and stays open until down removes it', async () => {
  fake.scripts.set('keep', { failSteps: ['link:east->west'] });
  const handle = await start(spec('keep', 'onFailure: keep'));
  const kept = await untilPhase('keep', 'kept');
  expect(undos('keep')).toEqual([]);
  expect(kept.ledger.length).toBe(created('keep').length - 1);
  expect(kept.steps.filter((s) => s.state === 'kept').length).toBe(kept.ledger.length);
  expect(kept.error).toContain('injected failure in link:east->west');
  // Open, with its deadline: `down` reaches it and removes exactly what was kept.
  expect(Date.parse(kept.expiresAt!) - Date.parse(kept.startedAt)).toBe(2 * 3_600_000);
  expect((await handle.describe()).status.name).toBe('RUNNING');
  await handle.signal(teardownSignal);
  const final = await handle.result();
  expect(final.phase).toBe('deleted');
  expect(final.ledger).toEqual([]);
  expectUndoneInReverse(
    'keep',
    created('keep').filter((id) => id !== 'link:east->west'),
  );
});

test('a kept mesh is torn down when its TTL expires', async () => {
  fake.scripts.set('keep-ttl', { failSteps: ['verify'] });
  const handle = await start(spec('keep-ttl', 'onFailure: keep'));
  await untilPhase('keep-ttl', 'kept');
  const final = await handle.result(); // time skips to the deadline
  expect(final.phase).toBe('deleted');
  expectUndoneInReverse('keep-ttl', created('keep-ttl'));
});

test('undo runs one lane per cluster, skips objects inside local clusters deleted whole, and removes files last', async () => {
  fake.scripts.set('lanes', { realistic: true });
  const handle = await start(spec('lanes'));
  await untilPhase('lanes', 'ready');
  await handle.signal(teardownSignal);
  const final = await handle.result();
  expect(final.phase).toBe('deleted');
  expect(final.ledger).toEqual([]);
  // Both clusters are local and deleted whole: no per-object deletes inside them, the CA file last.
  expect(undos('lanes').slice(0, 2).sort()).toEqual(['create-cluster:east', 'create-cluster:west']);
  expect(undos('lanes')).toEqual([...undos('lanes').slice(0, 2), 'root-ca']);
  expect(final.steps.filter((s) => s.kind !== 'verify').every((s) => s.state === 'undone')).toBe(true);
});

test('undo on existing clusters deletes objects newest first within each cluster', async () => {
  fake.scripts.set('exist', { realistic: true });
  const s = spec('exist');
  s.clusters = s.clusters.map((c) => ({ ...c, provider: 'existing' as const, existing: { kubeconfig: '/dev/null' } }));
  const handle = await start(s);
  await untilPhase('exist', 'ready');
  await handle.signal(teardownSignal);
  const final = await handle.result();
  expect(final.phase).toBe('deleted');
  const plan = buildPlan(s);
  const clusterOf = (id: string) => {
    const step = plan.steps.find((x) => x.id === id)!;
    return step.target ?? step.cluster ?? '';
  };
  for (const lane of ['east', 'west']) {
    const mine = (ids: string[]) => ids.filter((id) => clusterOf(id) === lane && !id.startsWith('create-cluster'));
    expectUndoneInReverseOrder(mine(undos('exist')), mine(created('exist')), plan);
  }
  expect(undos('exist').at(-1)).toBe('root-ca');
});

test('drift is checked every drift.every on its own while ready, and what it finds is repaired', async () => {
  // The first check finds a remote secret gone; the ones after it find nothing.
  fake.scripts.set('drifty', { drift: [[{ step: 'link:east->west', cluster: 'west' }]] });
  const handle = await start(twoClusterMesh('drifty', 'ttl: 5m\ndrift: { every: 1m }\n'));
  await untilPhase('drifty', 'ready');
  const final = await handle.result(); // time skips through the checks to the deadline
  expect(final.phase).toBe('deleted');
  const calls = fake.driftCallsOf('drifty');
  // A baseline when ready, a check a minute after each (the repair takes a new baseline), until the TTL.
  expect(calls.slice(0, 3)).toEqual(['baseline', 'check', 'baseline']);
  expect(calls.filter((c) => c === 'check').length).toBeGreaterThanOrEqual(3);
  expect(runs('drifty').filter((id) => id === 'link:east->west')).toHaveLength(2);
  expect(final.drift).toMatchObject({ trigger: 'timer', state: 'clean' });
  expect(final.conditions?.find((c) => c.type === 'Drifted')).toMatchObject({ status: 'False', reason: 'NoDrift' });
});
