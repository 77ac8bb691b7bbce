// GKE meshes end to end against meshflow's GKE emulator: the real workflow and worker, the real
// @google-cloud/container and @google-cloud/compute clients over gRPC and REST to 127.0.0.1, and
// emulated clusters backed by local clusters (real API servers, controllers, kwok and istiod).
// The two examples that mirror Istio's GKE guides reach ready and leave nothing behind; faults
// show retries for what is transient, full compensation for what is not, and one cluster after
// a create whose answer was lost.
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { meshStatus, rotateMesh, startMesh, teardownMesh } from '../src/client';
import { GKE_COMPUTE_EMULATOR_HOST, GKE_EMULATOR_HOST, gkeClients } from '../src/gke/clients';
import { GkeEmulator } from '../src/emulators/gke/emulator';
import { LocalClusters } from '../src/local/clusters';
import { parseMeshSpec } from '../src/spec/load';
import type { MeshSpec } from '../src/spec/schema';
import { sleep } from '../src/util/net';
import { type MeshWorker, createWorker } from '../src/worker';
import type { MeshStatus } from '../src/workflows/types';
import { scratchDir, testLocalTools } from './helpers/env';
import { realDeps, waitPhase as waitForPhase } from './helpers/mesh';
import { devServer } from './helpers/temporal';

jest.setTimeout(300_000);

let env: TestWorkflowEnvironment;
let worker: MeshWorker;
let running: Promise<void>;
let state: string;
let emulatorState: string;
let emulator: GkeEmulator;
const saved = { gke: process.env[GKE_EMULATOR_HOST], compute: process.env[GKE_COMPUTE_EMULATOR_HOST] };

const waitPhase = (mesh: string, phases: string[], timeoutMs = 200_000): Promise<MeshStatus> =>
  waitForPhase(env.client, mesh, phases, timeoutMs);

const example = (file: string, name: string): MeshSpec => ({
  ...parseMeshSpec(fs.readFileSync(path.join(__dirname, '..', 'examples', file), 'utf8')),
  name,
});

/** One emulated GKE cluster (zonal, one node), app none: the smallest mesh a fault can hit. */
const single = (name: string, project = 'fault-project-1'): MeshSpec =>
  parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: ${name}
clusters:
  - { name: c1, provider: gke, network: n1, gke: { project: ${project}, location: us-central1-a, nodeCount: 1 } }
app: { sample: none }
`);

/** Nothing of the mesh left: no emulated cluster or firewall rule, no backing local cluster, no process. */
function expectNothingLeft(mesh: string): void {
  expect(emulator.clusters().filter((c) => c.resourceLabels?.['meshflow-mesh'] === mesh)).toEqual([]);
  expect(emulator.firewalls().filter((f) => f.name.includes(mesh))).toEqual([]);
  expect(fs.existsSync(path.join(state, 'meshes', mesh))).toBe(false);
  expect(fs.existsSync(path.join(state, 'gke', mesh))).toBe(false);
}

beforeAll(async () => {
  env = await devServer();
  state = scratchDir('gke');
  emulatorState = scratchDir('gke-emulator');
  // GKE's proportions at 1/100: create 3 s, delete 1.8 s, firewall 0.1 s.
  emulator = new GkeEmulator({ stateDir: emulatorState, tools: testLocalTools(), latency: 0.01 });
  const at = await emulator.start();
  process.env[GKE_EMULATOR_HOST] = at.grpc;
  process.env[GKE_COMPUTE_EMULATOR_HOST] = at.compute;
  worker = await createWorker(env.nativeConnection, 'default', realDeps(state), 'gke');
  running = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await emulator?.reset();
  await emulator?.stop();
  await env?.teardown();
  for (const [k, v] of [
    [GKE_EMULATOR_HOST, saved.gke],
    [GKE_COMPUTE_EMULATOR_HOST, saved.compute],
  ] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

test('two projects on two networks with Online Boutique: ready through the real GKE client, and down leaves nothing', async () => {
  const spec = example('gke-two-projects.yaml', 'gke-two');
  const before = emulator.calls();
  const handle = await startMesh(env.client, spec, 'gke');
  const ready = await waitPhase('gke-two', ['ready', 'failed', 'deleted']);
  expect(ready.error).toBeUndefined();
  expect(ready.phase).toBe('ready');
  // Istio's own view, from the istiod beside each emulated primary, passes like on local clusters.
  const controlPlane = ready.checks.filter((c) => c.name !== 'traffic' && c.name !== 'ingress');
  expect(controlPlane.filter((c) => c.status !== 'passed')).toEqual([]);
  expect(controlPlane.map((c) => c.name)).toEqual(
    expect.arrayContaining(['discovery', 'cross-network-endpoints', 'trust-chain']),
  );
  // As on real GKE: istiod reached through a port-forward to its pod (kwok standing in for the kubelet).
  for (const c of controlPlane.filter((x) => ['discovery', 'cross-network-endpoints', 'trust-chain'].includes(x.name)))
    expect(c.via).toMatch(/^port-forward to istio-system\/istiod-/);

  // Two clusters, in the spec's projects and locations, labelled as this mesh's, VPC-native on the spec's ranges.
  const clusters = emulator.clusters().filter((c) => c.resourceLabels?.['meshflow-mesh'] === 'gke-two');
  expect(clusters.map((c) => `${c.project}/${c.location}/${c.name}/${c.status}`).sort()).toEqual([
    'meshflow-demo-east/us-east1-b/gke-two-east/RUNNING',
    'meshflow-demo-west/europe-west1-b/gke-two-west/RUNNING',
  ]);
  const gke = gkeClients();
  const [east] = await gke.clusters.getCluster({
    name: 'projects/meshflow-demo-east/locations/us-east1-b/clusters/gke-two-east',
  });
  expect(east.resourceLabels).toEqual({
    'managed-by': 'meshflow',
    'meshflow-mesh': 'gke-two',
    'meshflow-cluster': 'east',
  });
  expect(east.ipAllocationPolicy?.useIpAliases).toBe(true);
  expect(east.clusterIpv4Cidr).toBe('10.16.0.0/14');
  expect(east.releaseChannel?.channel).toBe('REGULAR');
  expect(east.nodePools?.[0].initialNodeCount).toBe(3);
  expect(east.nodePools?.[0].config?.machineType).toBe('e2-standard-4');
  await gke.close();
  // Two networks: east-west gateways carry the traffic, no firewall rule.
  expect(emulator.firewalls()).toEqual([]);
  expect(ready.steps.some((s) => s.kind === 'firewall')).toBe(false);
  // No hot polling: GetOperation a handful of times per 3-second create.
  const calls = emulator.calls();
  const polls = (calls.GetOperation ?? 0) - (before.GetOperation ?? 0);
  expect(calls.CreateCluster - (before.CreateCluster ?? 0)).toBe(2);
  expect(polls).toBeLessThanOrEqual(2 * 8);

  // The Online Boutique parts are where the spec put them (Deployments in the backing clusters).
  const local = new LocalClusters(emulatorState, testLocalTools());
  const deployments = async (name: string) => {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(emulator.backing(...(name.split('/') as [string, string, string]))!.kubeconfig);
    return (await kc.makeApiClient(k8s.AppsV1Api).listDeploymentForAllNamespaces()).items.map((d) => d.metadata?.name);
  };
  expect(await deployments('meshflow-demo-east/us-east1-b/gke-two-east')).toEqual(
    expect.arrayContaining(['frontend', 'cartservice']),
  );
  expect(await deployments('meshflow-demo-west/europe-west1-b/gke-two-west')).toEqual(
    expect.arrayContaining(['checkoutservice', 'adservice']),
  );

  // Credentials rotate on GKE (emulated) clusters too: the istiod beside each emulated primary takes
  // up new intermediates, then a new root beside the old, then the old root is dropped.
  for (const req of [
    { what: 'intermediates' },
    { what: 'root', grace: '1h' },
    { what: 'root', finish: true },
  ] as const) {
    const out = await rotateMesh(env.client, 'gke-two', req);
    expect(out.update).toMatchObject({ state: 'applied' });
    expect(out.checks.filter((c) => c.name === 'trust-chain' && c.status === 'passed').length).toBe(2);
  }
  expect((await meshStatus(env.client, 'gke-two')).trust!.intermediates.map((i) => i.generation)).toEqual([3, 3]);

  await teardownMesh(env.client, 'gke-two');
  const final = await handle.result();
  expect(final.phase).toBe('deleted');
  expect(final.leftBehind).toEqual([]);
  expectNothingLeft('gke-two');
  // The Google access token and the clusters' CAs stayed out of history.
  const texts: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        if (k === 'data' && typeof x === 'string') texts.push(Buffer.from(x, 'base64').toString());
        else walk(x);
      }
  };
  walk(JSON.parse(historyToJSON(await handle.fetchHistory())));
  const decoded = texts.join('\n');
  expect(decoded).toContain('"phase":"deleted"');
  expect(decoded).not.toContain('gke-emulator-access-token');
  expect(decoded).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE|LS0tLS1CRUdJTi/);
  expect(local.list().map((c) => c.name)).toEqual([]);
});

test('one project on one VPC: a firewall rule lets the pod ranges in, and goes with the mesh', async () => {
  const spec = example('gke-one-network.yaml', 'gke-flat');
  const handle = await startMesh(env.client, spec, 'gke');
  const ready = await waitPhase('gke-flat', ['ready', 'failed', 'deleted']);
  expect(ready.error).toBeUndefined();
  expect(ready.phase).toBe('ready');
  const rules = emulator.firewalls();
  expect(rules).toHaveLength(1);
  expect(rules[0]).toMatchObject({
    project: 'meshflow-demo',
    name: 'meshflow-gke-flat-vpc',
    network: expect.stringContaining('networks/default'),
  });
  expect([...rules[0].sourceRanges].sort()).toEqual(['10.32.0.0/14', '10.40.0.0/14']);
  expect(ready.steps.find((s) => s.id === 'firewall:vpc')?.outputs?.rule).toBe('meshflow-demo/meshflow-gke-flat-vpc');
  // One network: no east-west gateway, and the caller-callee pods are in their clusters.
  expect(ready.steps.some((s) => s.kind === 'eastwest-gateway')).toBe(false);

  await teardownMesh(env.client, 'gke-flat');
  const final = await handle.result();
  expect(final.phase).toBe('deleted');
  expect(final.leftBehind).toEqual([]);
  expectNothingLeft('gke-flat');
});

test('transient faults are retried, and a create whose answer was lost makes exactly one cluster', async () => {
  const before = emulator.calls();
  emulator.fault({ method: 'CreateCluster', code: 'UNAVAILABLE' });
  emulator.fault({ method: 'CreateCluster', kind: 'lose-answer' });
  emulator.fault({ method: 'GetOperation', code: 'DEADLINE_EXCEEDED' });
  const handle = await startMesh(env.client, single('gke-lost'), 'gke');
  const ready = await waitPhase('gke-lost', ['ready', 'failed', 'deleted']);
  expect(ready.error).toBeUndefined();
  expect(ready.phase).toBe('ready');
  const create = ready.steps.find((s) => s.id === 'create-cluster:c1')!;
  expect(create.attempts).toBeGreaterThanOrEqual(3); // UNAVAILABLE, lost answer, then adopted
  expect(emulator.calls().CreateCluster - (before.CreateCluster ?? 0)).toBe(3);
  const mine = emulator.clusters().filter((c) => c.resourceLabels?.['meshflow-mesh'] === 'gke-lost');
  expect(mine).toHaveLength(1);
  await teardownMesh(env.client, 'gke-lost');
  expect((await handle.result()).phase).toBe('deleted');
  expectNothingLeft('gke-lost');
});

test('quota exhausted on one cluster: a clear non-retryable error, and the other cluster is deleted', async () => {
  const spec = parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: gke-quota
clusters:
  - { name: a, provider: gke, network: n1, gke: { project: quota-project-1, location: us-east1-b, nodeCount: 1 } }
  - { name: b, provider: gke, network: n2, gke: { project: quota-project-1, location: us-west1-a, nodeCount: 1 } }
app: { sample: none }
`);
  const before = emulator.calls();
  emulator.fault({ method: 'CreateCluster', code: 'RESOURCE_EXHAUSTED' });
  const handle = await startMesh(env.client, spec, 'gke');
  const final = await handle.result().catch(async () => meshStatus(env.client, 'gke-quota'));
  const status = final.phase === 'deleted' ? final : await waitPhase('gke-quota', ['deleted', 'failed']);
  expect(status.phase).toBe('deleted');
  expect(status.error).toContain('quota exhausted');
  expect(status.error).toContain('Ask for more quota in project quota-project-1');
  // Not retried: one refused create, one that succeeded (and was then deleted).
  expect(emulator.calls().CreateCluster - (before.CreateCluster ?? 0)).toBe(2);
  expect(status.leftBehind).toEqual([]);
  expectNothingLeft('gke-quota');
});

test('a create whose operation ends in error leaves a cluster in ERROR, which compensation deletes', async () => {
  emulator.fault({
    method: 'CreateCluster',
    kind: 'operation-error',
    message: 'Insufficient regional quota to satisfy request: resource "CPUS"',
  });
  const handle = await startMesh(env.client, single('gke-operr'), 'gke');
  const final = await handle.result().catch(() => undefined);
  const status = final ?? (await waitPhase('gke-operr', ['deleted', 'failed']));
  expect(status.phase).toBe('deleted');
  expect(status.error).toContain('Insufficient regional quota');
  expect(status.leftBehind).toEqual([]);
  expectNothingLeft('gke-operr');
});

test("a GKE cluster of the same name that is not the mesh's is refused by the preflight and left alone", async () => {
  const gke = gkeClients();
  const [op] = await gke.clusters.createCluster({
    parent: 'projects/other-team-1/locations/us-central1-a',
    cluster: { name: 'gke-theirs-c1', initialNodeCount: 1, resourceLabels: { team: 'payments' } },
  });
  for (let i = 0; i < 100; i++) {
    const [now] = await gke.clusters.getOperation({
      name: `projects/other-team-1/locations/us-central1-a/operations/${op.name}`,
    });
    if (now.status === 'DONE') break;
    await sleep(200);
  }
  const handle = await startMesh(env.client, single('gke-theirs', 'other-team-1'), 'gke');
  const final = await handle.result().catch(() => undefined);
  const status = final ?? (await waitPhase('gke-theirs', ['deleted', 'failed']));
  expect(status.phase).toBe('deleted');
  expect(status.error).toContain(
    'GKE cluster gke-theirs-c1 (project other-team-1, location us-central1-a) already exists and is not mesh gke-theirs',
  );
  expect(status.steps.find((s) => s.id === 'create-cluster:c1')?.state).toBe('pending');
  const [theirs] = await gke.clusters.getCluster({
    name: 'projects/other-team-1/locations/us-central1-a/clusters/gke-theirs-c1',
  });
  expect(theirs.status).toBe('RUNNING');
  expect(theirs.resourceLabels).toEqual({ team: 'payments' });
  const [del] = await gke.clusters.deleteCluster({
    name: 'projects/other-team-1/locations/us-central1-a/clusters/gke-theirs-c1',
  });
  expect(del.name).toBeTruthy();
  await gke.close();
});
