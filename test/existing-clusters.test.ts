// Existing clusters are checked before anything changes: a mesh over the kubeconfigs of two local
// clusters, one of which already runs another mesh's Istio, is refused by its preflight step with
// what to fix, and neither cluster is touched. Real workflow, real worker, real API servers.
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import YAML from 'yaml';
import { meshStatus, startMesh, teardownMesh } from '../src/client';
import { LocalClusters } from '../src/local/clusters';
import { buildPlan } from '../src/plan/plan';
import { parseMeshSpec } from '../src/spec/load';
import { type MeshWorker, createWorker } from '../src/worker';
import type { MeshStatus } from '../src/workflows/types';
import { scratchDir, testLocalTools } from './helpers/env';
import { realDeps, waitPhase as waitForPhase } from './helpers/mesh';
import { devServer } from './helpers/temporal';

jest.setTimeout(240_000);

let env: TestWorkflowEnvironment;
let worker: MeshWorker;
let running: Promise<void>;
let state: string;
let clusters: LocalClusters;

const waitPhase = (mesh: string, phases: string[], timeoutMs = 120_000): Promise<MeshStatus> =>
  waitForPhase(env.client, mesh, phases, timeoutMs);

/** Every object in a cluster that carries meshflow's label for `mesh` (namespaces, and the kinds Istio installs). */
async function labelledFor(kc: k8s.KubeConfig, mesh: string): Promise<string[]> {
  const selector = `meshflow.dev/mesh=${mesh}`;
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const found = [
    ...(await core.listNamespace({ labelSelector: selector })).items.map((n) => `Namespace ${n.metadata?.name}`),
    ...(await core.listSecretForAllNamespaces({ labelSelector: selector })).items.map(
      (s) => `Secret ${s.metadata?.name}`,
    ),
    ...(await kc.makeApiClient(k8s.AppsV1Api).listDeploymentForAllNamespaces({ labelSelector: selector })).items.map(
      (d) => `Deployment ${d.metadata?.name}`,
    ),
    ...(
      await kc.makeApiClient(k8s.ApiextensionsV1Api).listCustomResourceDefinition({ labelSelector: selector })
    ).items.map((c) => `CRD ${c.metadata?.name}`),
  ];
  return found;
}

const kubeconfigOf = (file: string) => {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(file);
  return kc;
};

beforeAll(async () => {
  env = await devServer();
  state = scratchDir('existing');
  clusters = new LocalClusters(state, testLocalTools());
  worker = await createWorker(env.nativeConnection, 'default', realDeps(state), 'existing');
  running = worker.run();
});

afterAll(async () => {
  await teardownMesh(env.client, 'other').catch(() => undefined);
  await clusters?.delete(clusters.list().map((c) => c.name));
  worker?.shutdown();
  await running;
  await env?.teardown();
});

test("a mesh over existing clusters, one running another mesh's Istio, is refused before anything changes", async () => {
  // Cluster b runs mesh "other" (made by meshflow, with its own Istio); cluster a is bare.
  const other = parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: other
clusters:
  - { name: b, provider: local, network: nb }
app: { sample: none }
`);
  const handle = await startMesh(env.client, other, 'existing');
  expect((await waitPhase('other', ['ready', 'failed'])).phase).toBe('ready');
  const [bare] = await clusters.start(['bare-a']);
  const b = clusters.get('other-b')!;
  const kcA = kubeconfigOf(bare.kubeconfig);
  const kcB = kubeconfigOf(b.kubeconfig);
  const istiodBefore = await kcB.makeApiClient(k8s.AppsV1Api).readNamespacedDeployment({
    name: 'istiod',
    namespace: 'istio-system',
  });

  const ours = parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: ours
clusters:
  - { name: a, provider: existing, network: n1, existing: { kubeconfig: ${bare.kubeconfig} } }
  - { name: b, provider: existing, network: n2, existing: { kubeconfig: ${b.kubeconfig} } }
`);
  // The preflight is a step of the plan, before every other.
  const plan = buildPlan(ours);
  expect(plan.steps[0]).toMatchObject({ id: 'preflight', dependsOn: [] });
  for (const s of plan.steps.filter((x) => x.kind === 'root-ca' || x.kind === 'create-cluster'))
    expect(s.dependsOn).toEqual(['preflight']);

  const refused = await startMesh(env.client, ours, 'existing');
  const failed = await waitPhase('ours', ['failed', 'ready', 'deleted']);
  await refused.result().catch(() => undefined);
  // Nothing was made, so nothing is left: the mesh ends deleted, with the preflight's error.
  expect(failed.phase).toBe('deleted');
  expect(failed.error).toContain('preflight: 1 of 2 cluster(s) cannot join mesh ours; nothing was changed');
  expect(failed.error).toContain(
    "b: already runs an Istio that is not this mesh's: istiod Deployment istio-system/istiod (of meshflow mesh other)",
  );
  expect(failed.error).not.toContain('- a:');
  const steps = Object.fromEntries(failed.steps.map((s) => [s.id, s.state]));
  expect(steps.preflight).toBe('failed');
  expect(Object.entries(steps).filter(([id, st]) => id !== 'preflight' && st !== 'pending')).toEqual([]);
  expect(failed.ledger).toEqual([]);
  expect(failed.leftBehind).toEqual([]);

  // Untouched: nothing of mesh "ours" in either cluster, and mesh other's istiod as it was.
  expect(await labelledFor(kcA, 'ours')).toEqual([]);
  expect(await labelledFor(kcB, 'ours')).toEqual([]);
  expect((await kcA.makeApiClient(k8s.CoreV1Api).listNamespace()).items.map((n) => n.metadata?.name)).not.toContain(
    'istio-system',
  );
  const istiodAfter = await kcB.makeApiClient(k8s.AppsV1Api).readNamespacedDeployment({
    name: 'istiod',
    namespace: 'istio-system',
  });
  expect(istiodAfter.metadata?.resourceVersion).toBe(istiodBefore.metadata?.resourceVersion);
  expect((await meshStatus(env.client, 'other')).phase).toBe('ready');

  await teardownMesh(env.client, 'other');
  await handle.result().catch(() => undefined);
  expect(clusters.get('other-b')).toBeUndefined();
});

test('preflight names every problem of every cluster: unreachable, loopback address, missing permissions', async () => {
  const [a] = await clusters.start(['perm-a']);
  const dir = scratchDir('kubeconfigs');
  // A user who may only read: a ServiceAccount bound to the "view" ClusterRole, by token.
  const kc = kubeconfigOf(a.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespacedServiceAccount({ namespace: 'default', body: { metadata: { name: 'viewer' } } });
  await kc.makeApiClient(k8s.RbacAuthorizationV1Api).createClusterRoleBinding({
    body: {
      metadata: { name: 'viewer-view' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
      subjects: [{ kind: 'ServiceAccount', name: 'viewer', namespace: 'default' }],
    },
  });
  const token = await core.createNamespacedServiceAccountToken({
    name: 'viewer',
    namespace: 'default',
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const doc = YAML.parse(fs.readFileSync(a.kubeconfig, 'utf8')) as {
    users: Array<{ user: Record<string, unknown> }>;
    clusters: Array<{ cluster: { server: string } }>;
  };
  doc.users[0].user = { token: token.status!.token };
  const viewer = path.join(dir, 'viewer.yaml');
  fs.writeFileSync(viewer, YAML.stringify(doc), { mode: 0o600 });
  // An API server that is not there.
  doc.clusters[0].cluster.server = 'https://127.0.0.1:1';
  const nowhere = path.join(dir, 'nowhere.yaml');
  fs.writeFileSync(nowhere, YAML.stringify(doc), { mode: 0o600 });

  const spec = parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: checks
clusters:
  - { name: viewer, provider: existing, network: n1, existing: { kubeconfig: ${viewer} } }
  - { name: gone, provider: existing, network: n2, existing: { kubeconfig: ${nowhere} } }
  - name: far
    provider: existing
    network: n3
    apiServerAddress: https://far.example.internal:6443
    existing: { kubeconfig: ${a.kubeconfig} }
app: { sample: none }
`);
  const handle = await startMesh(env.client, spec, 'existing');
  const failed = await waitPhase('checks', ['failed', 'ready', 'deleted']);
  await handle.result().catch(() => undefined);
  expect(failed.phase).toBe('deleted');
  const error = failed.error ?? '';
  expect(error).toContain('preflight: 2 of 3 cluster(s) cannot join mesh checks; nothing was changed');
  // The reader may not install Istio, and is told what to grant.
  expect(error).toContain(
    "- viewer: the kubeconfig's user may not create/delete namespaces, create/delete customresourcedefinitions.apiextensions.k8s.io,",
  );
  expect(error).toContain('create serviceaccounts/token in istio-system');
  expect(error).toContain('kubectl create clusterrolebinding meshflow-admin --clusterrole=cluster-admin');
  expect(error).toContain('- gone: cannot reach its API server at https://127.0.0.1:1');
  // One cluster is far away: the loopback ones cannot be reached from it.
  expect(error).toContain(`- viewer: its API server address ${a.server} is loopback`);
  expect(error).toContain('Set clusters[viewer].apiServerAddress to an address they can reach');
  expect(error).not.toContain('- far:');
  expect(failed.ledger).toEqual([]);
  expect(await labelledFor(kc, 'checks')).toEqual([]);
});
