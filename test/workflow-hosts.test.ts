// Workflow behaviour that needs the real dev server: steps stay on the host that claimed the mesh
// when several workers run, and a teardown that arrives while a verify holds up a continue-as-new
// is served, not lost. The server suggests continue-as-new early here (after 40 events).
import fs from 'node:fs';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection, Worker } from '@temporalio/worker';
import { hostActivities, hostTaskQueue } from '../src/activities/host';
import { listMeshes } from '../src/client';
import { parseMeshSpec } from '../src/spec/load';
import type { MeshSpec } from '../src/spec/schema';
import { extendUpdate, meshWorkflowId, statusQuery, teardownSignal, verifyUpdate } from '../src/workflows/definitions';
import type { provisionMesh } from '../src/workflows/mesh';
import type { MeshStatus, Resource } from '../src/workflows/types';
import { sleep } from '../src/util/net';
import { WORKER_TUNING } from '../src/worker';
import { FakeActivities, twoClusterMesh } from './helpers/fake-activities';
import { recordHistory } from './helpers/histories';
import { scratchDir } from './helpers/env';
import { devServer } from './helpers/temporal';

const QUEUE = 'hosts';
let env: TestWorkflowEnvironment;
const fakes = { a: new FakeActivities(), b: new FakeActivities() };
const workers: Worker[] = [];
const connections: NativeConnection[] = [];
let running: Promise<unknown>;

beforeAll(async () => {
  env = await devServer({ 'limit.historyCount.suggestContinueAsNew': 40 });
  // Two workers as on two hosts: each polls the shared queue and its own host queue.
  for (const [host, fake] of Object.entries(fakes)) {
    const { claimHost: _own, ...steps } = fake.activities();
    // A connection of its own per host, as two machines would have.
    const connection = await NativeConnection.connect({ address: env.address });
    connections.push(connection);
    const common = { ...WORKER_TUNING, connection, shutdownGraceTime: '1s' };
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: QUEUE,
        workflowsPath: require.resolve('../src/workflow-bundle'),
        activities: hostActivities({ host, taskQueue: hostTaskQueue(QUEUE, host) }),
      }),
      await Worker.create({ ...common, taskQueue: hostTaskQueue(QUEUE, host), activities: steps }),
    );
  }
  running = Promise.all(workers.map((w) => w.run()));
});

afterAll(async () => {
  for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
  await running;
  for (const c of connections) await c.close();
  await env?.teardown();
});

const spec = (name: string): MeshSpec => twoClusterMesh(name);

const start = (s: MeshSpec) =>
  env.client.workflow.start<typeof provisionMesh>('provisionMesh', {
    taskQueue: QUEUE,
    workflowId: meshWorkflowId(s.name),
    args: [{ spec: s }],
  });

async function untilPhase(mesh: string, phase: string): Promise<MeshStatus> {
  const handle = env.client.workflow.getHandle(meshWorkflowId(mesh));
  for (let i = 0; i < 400; i++) {
    const s = await handle.query(statusQuery).catch(() => undefined);
    if (s?.phase === phase) return s;
    await sleep(50);
  }
  throw new Error(`mesh ${mesh} never reached ${phase}`);
}

test('every step, undo included, runs on the host that claimed the mesh', async () => {
  const meshes = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'];
  const handles = await Promise.all(meshes.map((m) => start(spec(m))));
  const hosts = new Set<string>();
  for (const [i, mesh] of meshes.entries()) {
    const ready = await untilPhase(mesh, 'ready');
    expect(ready.hostQueue).toBe(hostTaskQueue(QUEUE, ready.host!));
    hosts.add(ready.host!);
    await handles[i].signal(teardownSignal);
    expect((await handles[i].result()).phase).toBe('deleted');
    const mine = fakes[ready.host as 'a' | 'b'].callsOf(mesh);
    const other = fakes[ready.host === 'a' ? 'b' : 'a'].callsOf(mesh);
    expect(mine.filter((c) => c.startsWith('undo ')).length).toBeGreaterThan(0);
    expect(mine).toContain('run verify');
    expect(other).toEqual([]);
  }
  // Both hosts took meshes (the claim goes to whichever worker polls first).
  expect(hosts.size).toBeGreaterThanOrEqual(1);
});

test('a teardown that arrives while a verify holds up continue-as-new is served, not carried away', async () => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  for (const fake of Object.values(fakes)) fake.scripts.set('can', { holdVerify: held });
  const handle = await start(spec('can'));
  await untilPhase('can', 'ready');
  const verify = handle.executeUpdate(verifyUpdate, { args: [{}] }).catch((err: unknown) => err);
  // Grow the history past the threshold while the verify is held: continue-as-new is suggested
  // and the workflow waits for the verify (a running handler) before it may continue.
  for (let i = 0; i < 15; i++) await handle.executeUpdate(extendUpdate, { args: ['1m'] });
  await handle.signal(teardownSignal);
  release();
  await verify;
  const final = await handle.result();
  expect(final.phase).toBe('deleted');
  // Torn down, not continued: the newest run completed (a lost teardown leaves one running for hours).
  expect((await handle.describe()).status.name).toBe('COMPLETED');
  await recordHistory(handle, 'v2-continued-as-new-then-down');
});

test('a host that picks up no step is HostUnavailable; down --abandon-host tears down the rest', async () => {
  // Host h1 runs the mesh's steps, then is gone for good; the shared queue's worker stays.
  const queue = 'gone-host';
  const fake = new FakeActivities();
  const kubeconfig = path.join(scratchDir('gone-host'), 'east.kubeconfig'); // only its existence is checked here
  fs.writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\n');
  const s = parseMeshSpec(`apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: abandon
clusters:
  - { name: east, provider: existing, network: n1, existing: { kubeconfig: ${kubeconfig} } }
  - { name: west, provider: local, network: n2 }
`);
  fake.scripts.set(s.name, { realistic: true });
  const connection = await NativeConnection.connect({ address: env.address });
  const common = { ...WORKER_TUNING, connection, shutdownGraceTime: '1s' };
  const { claimHost: _claim, ...steps } = fake.activities();
  const shared = await Worker.create({
    ...common,
    taskQueue: queue,
    workflowsPath: require.resolve('../src/workflow-bundle'),
    activities: { ...steps, ...hostActivities({ host: 'h1', taskQueue: hostTaskQueue(queue, 'h1') }) },
  });
  const host = await Worker.create({ ...common, taskQueue: hostTaskQueue(queue, 'h1'), activities: steps });
  const sharedRun = shared.run();
  const hostRun = host.run();
  try {
    const handle = await env.client.workflow.start<typeof provisionMesh>('provisionMesh', {
      taskQueue: queue,
      workflowId: meshWorkflowId(s.name),
      args: [{ spec: s, hostWait: '2s' }],
    });
    const ready = await untilPhase(s.name, 'ready');
    expect(ready.host).toBe('h1');
    host.shutdown();
    await hostRun;
    const onHost = fake.callsOf(s.name).length;

    // down waits for the host: within the host wait the status, list and the Web UI's details name it.
    await handle.signal(teardownSignal);
    let waiting: MeshStatus | undefined;
    const hostCondition = (st?: MeshStatus) => st?.conditions?.find((c) => c.type === 'HostUnavailable');
    for (let i = 0; i < 200 && !hostCondition(waiting); i++) {
      waiting = await handle.query(statusQuery);
      await sleep(100);
    }
    expect(waiting!.phase).toBe('tearing-down');
    expect(hostCondition(waiting)).toEqual(
      expect.objectContaining({
        type: 'HostUnavailable',
        status: 'True',
        host: 'h1',
        message: expect.stringContaining('--abandon-host'),
      }),
    );
    // Beside it, the mesh is not Ready: it is being torn down.
    expect(waiting!.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'TearingDown',
    });
    const listed = (await listMeshes(env.client)).find((m) => m.name === s.name);
    expect(listed?.hostUnavailable).toEqual({ host: 'h1', since: hostCondition(waiting)!.since });
    expect(fake.callsOf(s.name).length).toBe(onHost); // nothing ran meanwhile

    // Abandoned: the existing cluster's objects are removed by any worker; the host's remains are listed.
    await handle.signal(teardownSignal, { abandonHost: true });
    const final = await handle.result();
    expect(final.phase).toBe('failed');
    const undone = fake
      .callsOf(s.name)
      .slice(onHost)
      .filter((c) => c.startsWith('undo '));
    expect(undone.length).toBeGreaterThan(0);
    const byCluster = (r: Resource) =>
      r.type === 'file' ? '(host files)' : r.type === 'firewall' || r.type === 'trust' ? '' : r.cluster;
    expect(new Set(final.leftBehind.map((l) => byCluster(l.resource)))).toEqual(new Set(['west', '(host files)']));
    for (const l of final.leftBehind) expect(l.error).toContain('on host h1, abandoned by down --abandon-host');
    expect(final.ledger.every((l) => l.resource.type === 'file' || byCluster(l.resource) === 'west')).toBe(true);
    await recordHistory(handle, 'v3-host-abandoned');
  } finally {
    if (host.getState() === 'RUNNING') host.shutdown();
    shared.shutdown();
    await Promise.all([sharedRun, hostRun]);
    await connection.close();
  }
});
