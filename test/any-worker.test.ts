// Any worker can finish any mesh whose state is off every host's disk: a GKE (emulator) mesh whose
// CAs are in the Kubernetes trust store is claimed by no host. Worker A, a real `meshflow worker`
// process, starts it and is SIGKILLed mid-create, never to return; worker B (another host id and
// state directory, the same store) resumes the create and brings the mesh to ready, and `down`
// leaves nothing in the emulator or the store. No CA key touches either worker's disk.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { meshHandle, meshStatus, startMesh, teardownMesh } from '../src/client';
import { GKE_COMPUTE_EMULATOR_HOST, GKE_EMULATOR_HOST } from '../src/gke/clients';
import { GkeEmulator } from '../src/gke/emulator';
import { LocalClusters } from '../src/local/clusters';
import { parseMeshSpec } from '../src/spec/load';
import { sleep } from '../src/util/net';
import { TASK_QUEUE } from '../src/workflows/definitions';
import { scratchDir, testLocalTools } from './helpers/env';
import { devServer } from './helpers/temporal';

jest.setTimeout(300_000);

const cli = path.resolve(__dirname, '..', 'dist', 'cli', 'main.js');
let env: TestWorkflowEnvironment;
let emulator: GkeEmulator;
let management: LocalClusters;
let storeKubeconfig: string;
let endpoints: { grpc: string; compute: string };
const workers: ChildProcess[] = [];

beforeAll(async () => {
  env = await devServer();
  // GKE's proportions at 3/100: a create takes about 9 s, long enough to kill a worker inside it.
  emulator = new GkeEmulator({ stateDir: scratchDir('any-worker-gke'), tools: testLocalTools(), latency: 0.03 });
  endpoints = await emulator.start();
  management = new LocalClusters(scratchDir('any-worker-mgmt'), testLocalTools());
  const [mgmt] = await management.start(['mgmt']);
  storeKubeconfig = mgmt.kubeconfig;
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(storeKubeconfig);
  await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: 'meshflow-trust' } } });
});

afterAll(async () => {
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  await emulator?.reset();
  await emulator?.stop();
  await management?.delete(management.list().map((c) => c.name));
  await env?.teardown();
});

/** A `meshflow worker` process of its own host, state directory and log, against the shared store. */
function startWorker(host: string): { proc: ChildProcess; state: string; log: () => string } {
  const state = scratchDir(`any-worker-${host}`);
  const logFile = path.join(state, 'worker.log');
  const out = fs.openSync(logFile, 'a');
  const proc = spawn(process.execPath, [cli, 'worker', '--shutdown-grace', '0s'], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: env.address,
      TEMPORAL_NAMESPACE: 'default',
      MESHFLOW_STATE_DIR: state,
      MESHFLOW_HOST_ID: host,
      MESHFLOW_TRUST_STORE: `kubernetes:${storeKubeconfig}/meshflow-trust`,
      [GKE_EMULATOR_HOST]: endpoints.grpc,
      [GKE_COMPUTE_EMULATOR_HOST]: endpoints.compute,
    },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  workers.push(proc);
  return { proc, state, log: () => fs.readFileSync(logFile, 'utf8') };
}

async function polls(pid: number): Promise<boolean> {
  const r = await env.client.workflowService.describeTaskQueue({
    namespace: 'default',
    taskQueue: { name: TASK_QUEUE, kind: 1 },
    taskQueueType: 1,
  });
  return (r.pollers ?? []).some((p) => (p.identity ?? '').startsWith(`${pid}@`));
}

/** Polls `probe` until it answers; errors count as no answer yet (a query while no worker polls). */
async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 60_000,
  context = () => '',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${context()}`);
    await sleep(250);
  }
}

/** Every file under `dir` that holds a private key (PEM). */
function filesWithKeys(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .map((f) => path.join(dir, f))
    .filter((f) => fs.statSync(f).isFile() && fs.readFileSync(f, 'utf8').includes('PRIVATE KEY'));
}

test('worker A is killed mid-create and never returns: worker B finishes the mesh, and down leaves nothing', async () => {
  const spec = parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: roam
clusters:
  - { name: c1, provider: gke, network: n1, gke: { project: roam-project-1, location: us-central1-a, nodeCount: 1 } }
app: { sample: none }
`);
  const a = startWorker('host-a');
  await until('worker A polls', async () => ((await polls(a.proc.pid!)) ? true : undefined));
  const handle = await startMesh(env.client, spec);
  await until('the create runs on worker A', async () => {
    const s = await meshStatus(env.client, 'roam');
    return s.steps.find((x) => x.id === 'create-cluster:c1')?.state === 'running' ? s : undefined;
  });
  await sleep(1500); // inside the create: GKE's operation is under way
  a.proc.kill('SIGKILL');
  await until('worker A is gone', async () => (a.proc.exitCode !== null || a.proc.signalCode ? true : undefined));

  const b = startWorker('host-b');
  await until('worker B polls', async () => ((await polls(b.proc.pid!)) ? true : undefined), 120_000, b.log);
  const ready = await until(
    'the mesh ends provisioning',
    async () => {
      const s = await meshStatus(env.client, 'roam');
      return ['ready', 'failed', 'deleted'].includes(s.phase) ? s : undefined;
    },
    200_000,
    b.log,
  );
  expect(ready.error).toBeUndefined();
  expect(ready.phase).toBe('ready');
  // Claimed by no host: every step ran on the shared queue; the create resumed on worker B.
  expect(ready.host).toBeUndefined();
  expect(ready.hostQueue).toBeUndefined();
  expect(ready.steps.find((s) => s.id === 'create-cluster:c1')!.attempts).toBeGreaterThanOrEqual(2);
  expect(emulator.calls().CreateCluster).toBe(1);
  expect(ready.ledger.map((l) => l.resource.type)).toContain('trust');
  // The CAs are in the store's Secret and on neither worker's disk.
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(storeKubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const secret = await core.readNamespacedSecret({ name: 'meshflow-trust-roam', namespace: 'meshflow-trust' });
  expect(Object.keys(secret.data ?? {}).length).toBeGreaterThan(0);
  expect(filesWithKeys(a.state)).toEqual([]);
  expect(filesWithKeys(b.state)).toEqual([]);

  await teardownMesh(env.client, 'roam');
  const final = await meshHandle(env.client, 'roam').result();
  expect(final.phase).toBe('deleted');
  expect(final.leftBehind).toEqual([]);
  await handle.result();
  expect(emulator.clusters().filter((c) => c.resourceLabels?.['meshflow-mesh'] === 'roam')).toEqual([]);
  await expect(
    core.readNamespacedSecret({ name: 'meshflow-trust-roam', namespace: 'meshflow-trust' }),
  ).rejects.toMatchObject({ code: 404 });
  expect(b.log()).toMatch(/polling task queues meshflow and meshflow@host-b/);
  b.proc.kill('SIGTERM');
  await until('worker B stops', async () => (b.proc.exitCode !== null || b.proc.signalCode ? true : undefined));
});

test('two workers with one store run six GKE meshes while each is killed in turn: all ready, all torn down', async () => {
  const names = ['six-1', 'six-2', 'six-3', 'six-4', 'six-5', 'six-6'];
  let a = startWorker('host-a2');
  let b = startWorker('host-b2');
  await until(
    'both workers poll',
    async () => ((await polls(a.proc.pid!)) && (await polls(b.proc.pid!)) ? true : undefined),
    120_000,
  );
  const handles = await Promise.all(
    names.map((name, i) =>
      startMesh(
        env.client,
        parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: ${name}
clusters:
  - { name: c1, provider: gke, network: n1, gke: { project: six-project-${i + 1}, location: us-central1-a, nodeCount: 1 } }
app: { sample: none }
`),
      ),
    ),
  );
  // Each worker is SIGKILLed mid-provisioning and started again under its host id: the other one,
  // or its own new process, takes over what it ran.
  const killAndRestart = async (w: ReturnType<typeof startWorker>, host: string) => {
    w.proc.kill('SIGKILL');
    await until(`${host} is gone`, async () => (w.proc.exitCode !== null || w.proc.signalCode ? true : undefined));
    return startWorker(host);
  };
  await sleep(4000);
  a = await killAndRestart(a, 'host-a2');
  await sleep(8000);
  b = await killAndRestart(b, 'host-b2');
  const logs = () => `worker A:\n${a.log().slice(-2000)}\nworker B:\n${b.log().slice(-2000)}`;
  for (const name of names) {
    const s = await until(
      `${name} ends provisioning`,
      async () => {
        const st = await meshStatus(env.client, name);
        return ['ready', 'failed', 'deleted'].includes(st.phase) ? st : undefined;
      },
      400_000,
      logs,
    );
    expect({ name, phase: s.phase, error: s.error, hostQueue: s.hostQueue }).toEqual({
      name,
      phase: 'ready',
      error: undefined,
      hostQueue: undefined,
    });
  }
  for (const name of names) await teardownMesh(env.client, name);
  for (const h of handles) expect((await h.result()).phase).toBe('deleted');
  expect(emulator.clusters().filter((c) => names.includes(c.resourceLabels?.['meshflow-mesh'] ?? ''))).toEqual([]);
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(storeKubeconfig);
  const secrets = await kc.makeApiClient(k8s.CoreV1Api).listNamespacedSecret({ namespace: 'meshflow-trust' });
  expect(secrets.items.map((s) => s.metadata?.name).filter((n) => n?.startsWith('meshflow-trust-six'))).toEqual([]);
  for (const w of [a, b]) w.proc.kill('SIGTERM');
});
