// Any worker can finish any mesh whose state is off every host's disk: a GKE (emulator) mesh whose
// CAs are in the Kubernetes trust store is claimed by no host. Worker A, a real `meshflow worker`
// process, starts it and is SIGKILLed mid-create, never to return; worker B (another host id and
// state directory, the same store) resumes the create and brings the mesh to ready, and `down`
// leaves nothing in the emulator or the store. No CA key touches either worker's disk. The rig
// (dev server, emulator, management cluster, worker processes) is src/chaos/shared-store-rig.ts.
import fs from 'node:fs';
import path from 'node:path';
import { meshHandle, meshStatus, startMesh, teardownMesh } from '../src/client';
import { STORE_NAMESPACE, SharedStoreRig } from '../src/chaos/shared-store-rig';
import { LOCAL_TOOL_NAMES } from '../src/local/tools';
import type { MeshStatus } from '../src/workflows/types';
import { sleep } from '../src/util/net';
import { tool } from './helpers/env';

jest.setTimeout(300_000);

// GKE's proportions at 3/100: a create takes about 9 s, long enough to kill a worker inside it.
const rig = new SharedStoreRig(Object.fromEntries(['temporal', ...LOCAL_TOOL_NAMES].map((n) => [n, tool(n)])), 0.03);

beforeAll(() => rig.start());
afterAll(() => rig.stop());

/** Polls `probe` until it answers; errors count as no answer yet (a query while no worker polls). */
async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${workerLogs()}`);
    await sleep(250);
  }
}

/** The tail of every worker's log, for a failure's message. */
function workerLogs(): string {
  return rig.workers
    .map((w) => `${w.host}:\n${fs.readFileSync(path.join(w.state, 'worker.log'), 'utf8').slice(-1500)}`)
    .join('\n');
}

const ended = (mesh: string, timeoutMs: number) =>
  until<MeshStatus>(
    `${mesh} ends provisioning`,
    async () => {
      const s = await meshStatus(rig.client, mesh);
      return ['ready', 'failed', 'deleted'].includes(s.phase) ? s : undefined;
    },
    timeoutMs,
  );

/** Every file under `dir` that holds a private key (PEM). */
function filesWithKeys(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .map((f) => path.join(dir, f))
    .filter((f) => fs.statSync(f).isFile() && fs.readFileSync(f, 'utf8').includes('PRIVATE KEY'));
}

test('worker A killed mid-create for good: worker B finishes the mesh, and down leaves nothing', async () => {
  const a = rig.startWorker('host-a');
  await rig.untilPolling(a);
  const handle = await startMesh(rig.client, SharedStoreRig.gkeMesh('roam'));
  await until('the create runs on worker A', async () => {
    const s = await meshStatus(rig.client, 'roam');
    return s.steps.find((x) => x.id === 'create-cluster:c1')?.state === 'running' ? s : undefined;
  });
  await sleep(1500); // inside the create: GKE's operation is under way
  await rig.kill(a);

  const b = rig.startWorker('host-b');
  await rig.untilPolling(b);
  const ready = await ended('roam', 200_000);
  expect(ready.error).toBeUndefined();
  expect(ready.phase).toBe('ready');
  // Claimed by no host: every step ran on the shared queue; the create resumed on worker B.
  expect(ready.host).toBeUndefined();
  expect(ready.hostQueue).toBeUndefined();
  expect(ready.steps.find((s) => s.id === 'create-cluster:c1')!.attempts).toBeGreaterThanOrEqual(2);
  expect(rig.emulator!.calls().CreateCluster).toBe(1);
  expect(ready.ledger.map((l) => l.resource.type)).toContain('trust');
  // The CAs are in the store's Secret and on neither worker's disk.
  const secret = await rig.core().readNamespacedSecret({ name: 'meshflow-trust-roam', namespace: STORE_NAMESPACE });
  expect(Object.keys(secret.data ?? {}).length).toBeGreaterThan(0);
  expect(filesWithKeys(a.state)).toEqual([]);
  expect(filesWithKeys(b.state)).toEqual([]);

  await teardownMesh(rig.client, 'roam');
  const final = await meshHandle(rig.client, 'roam').result();
  expect(final.phase).toBe('deleted');
  expect(final.leftBehind).toEqual([]);
  await handle.result();
  expect(await rig.leftovers('roam')).toEqual([]);
  expect(fs.readFileSync(path.join(b.state, 'worker.log'), 'utf8')).toMatch(
    /polling task queues meshflow and meshflow@host-b/,
  );
  await rig.kill(b);
});

test('two workers, one store, six GKE meshes, each worker killed in turn: all ready, all torn down', async () => {
  const names = ['six-1', 'six-2', 'six-3', 'six-4', 'six-5', 'six-6'];
  let a = rig.startWorker('host-a2');
  let b = rig.startWorker('host-b2');
  await rig.untilPolling(a);
  await rig.untilPolling(b);
  const handles = await Promise.all(names.map((name) => startMesh(rig.client, SharedStoreRig.gkeMesh(name))));
  // Each worker is SIGKILLed mid-provisioning and started again under its host id: the other one,
  // or its own new process, takes over what it ran.
  await sleep(4000);
  await rig.kill(a);
  a = rig.startWorker('host-a2');
  await sleep(8000);
  await rig.kill(b);
  b = rig.startWorker('host-b2');
  for (const name of names) {
    const s = await ended(name, 400_000);
    expect({ name, phase: s.phase, error: s.error, hostQueue: s.hostQueue }).toEqual({
      name,
      phase: 'ready',
      error: undefined,
      hostQueue: undefined,
    });
  }
  for (const name of names) await teardownMesh(rig.client, name);
  for (const h of handles) expect((await h.result()).phase).toBe('deleted');
  for (const name of names) expect(await rig.leftovers(name)).toEqual([]);
  for (const w of [a, b]) await rig.kill(w);
});
