// meshflow never takes over or deletes what it did not create, on a real API server: an object
// of the same name that is not the mesh's stops the step before anything is applied; a foreign
// istio-system is never relabelled; a CRD still used by someone else's resources survives undo;
// and a step that fails half-way reports what it had applied, so compensation can remove it.
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { createActivities } from '../src/activities/mesh-activities';
import { parseManifests } from '../src/adapters/kube';
import { kubeFor } from '../src/adapters/providers';
import { LocalProvider } from '../src/providers/local/runtime';
import { controlPlaneOperator, istioctlRender } from '../src/istio/manifests';
import type { MeshActivities } from '../src/activities/types';
import { LocalClusters, type LocalCluster } from '../src/local/clusters';
import { parseMeshSpec } from '../src/spec/load';
import type { MeshSpec } from '../src/spec/schema';
import type { Resource, StepRequest, StepTrace } from '../src/steps/contract';
import { scratchDir, tool } from './helpers/env';
import { realDeps } from './helpers/mesh';

let state: string;
let clusters: LocalClusters;
let activities: MeshActivities;
const started: string[] = [];

beforeAll(() => {
  state = scratchDir('ownership');
  clusters = new LocalClusters(state, { kubeApiserver: tool('kube-apiserver'), etcd: tool('etcd') });
  activities = createActivities(realDeps(state));
});

afterAll(async () => {
  await clusters?.delete(started);
});

/** A fresh local cluster, joined to mesh `mesh` as an existing cluster (meshflow did not make it). */
async function existingCluster(
  mesh: string,
  app = 'app: { sample: none }',
): Promise<{ spec: MeshSpec; cluster: LocalCluster; kc: k8s.KubeConfig }> {
  const [cluster] = await clusters.start([`${mesh}-c1`]);
  started.push(cluster.name);
  const spec = parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: ${mesh}
clusters:
  - { name: c1, provider: existing, network: n1, existing: { kubeconfig: ${cluster.kubeconfig} } }
${app}`);
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(cluster.kubeconfig);
  return { spec, cluster, kc };
}

const req = (spec: MeshSpec, id: string, kind: StepRequest['step']['kind']): StepRequest => ({
  mesh: spec.name,
  spec,
  step: { id, kind, cluster: 'c1' },
});

async function failure(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

const traced = (f: ApplicationFailure): Resource[] => (f.details?.[0] as StepTrace).resources;

test("an object of the same name that is not the mesh's stops the control plane before anything is applied", async () => {
  const { spec, kc } = await existingCluster('foreign');
  await activities.createRootCa({ mesh: spec.name, spec, step: { id: 'root-ca', kind: 'root-ca' } });
  await activities.installCacerts(req(spec, 'cacerts:c1', 'cacerts'));
  // Someone else's istiod ServiceAccount (as an Istio installed by other means would have).
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespacedServiceAccount({
    namespace: 'istio-system',
    body: { metadata: { name: 'istiod', labels: { owner: 'someone' } } },
  });
  const f = await failure(activities.installControlPlane(req(spec, 'control-plane:c1', 'control-plane')));
  expect(f.type).toBe('NotOurs');
  expect(f.nonRetryable).toBe(true);
  expect(f.message).toContain('ServiceAccount istio-system/istiod');
  expect(f.message).toContain('does not take over');
  expect(traced(f)).toEqual([]); // nothing was applied
  const sa = await core.readNamespacedServiceAccount({ name: 'istiod', namespace: 'istio-system' });
  expect(sa.metadata?.labels).toEqual({ owner: 'someone' });
  const crds = await kc.makeApiClient(k8s.ApiextensionsV1Api).listCustomResourceDefinition();
  expect(crds.items.filter((c) => c.metadata?.name?.endsWith('istio.io'))).toEqual([]);
});

test('a foreign istio-system is never relabelled, and a foreign cacerts is found before any change', async () => {
  const { spec, kc } = await existingCluster('nsforeign');
  await activities.createRootCa({ mesh: spec.name, spec, step: { id: 'root-ca', kind: 'root-ca' } });
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'istio-system', labels: { team: 'platform' } } } });
  let f = await failure(activities.installCacerts(req(spec, 'cacerts:c1', 'cacerts')));
  expect(f.type).toBe('NotOurs');
  expect(f.message).toContain('kubectl label ns istio-system topology.istio.io/network=n1');
  expect((await core.readNamespace({ name: 'istio-system' })).metadata?.labels).toEqual({
    team: 'platform',
    'kubernetes.io/metadata.name': 'istio-system',
  });
  await expect(core.readNamespacedSecret({ name: 'cacerts', namespace: 'istio-system' })).rejects.toMatchObject({
    code: 404,
  });

  // Labelled by its owner, it is used as it is; a cacerts of someone else's is refused untouched.
  await core.patchNamespace(
    { name: 'istio-system', body: [{ op: 'add', path: '/metadata/labels/topology.istio.io~1network', value: 'n1' }] },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
  );
  await core.createNamespacedSecret({
    namespace: 'istio-system',
    body: { metadata: { name: 'cacerts' }, stringData: { 'ca-cert.pem': 'theirs' } },
  });
  f = await failure(activities.installCacerts(req(spec, 'cacerts:c1', 'cacerts')));
  expect(f.message).toContain('already has a cacerts secret that meshflow did not create');
  const ns = await core.readNamespace({ name: 'istio-system' });
  expect(ns.metadata?.labels?.['app.kubernetes.io/managed-by']).toBeUndefined();
  const secret = await core.readNamespacedSecret({ name: 'cacerts', namespace: 'istio-system' });
  expect(Buffer.from(secret.data!['ca-cert.pem'], 'base64').toString()).toBe('theirs');
});

test('undo keeps a CRD that still holds resources the mesh did not create, and says so', async () => {
  const { spec, kc } = await existingCluster('crds');
  await activities.createRootCa({ mesh: spec.name, spec, step: { id: 'root-ca', kind: 'root-ca' } });
  const cacerts = await activities.installCacerts(req(spec, 'cacerts:c1', 'cacerts'));
  const cp = await applyControlPlaneWithoutRollout(spec);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const gateway = (name: string, labels: Record<string, string>) => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'Gateway',
    metadata: { name, namespace: 'default', labels },
    spec: {
      selector: { istio: 'ingressgateway' },
      servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }],
    },
  });
  await custom.createNamespacedCustomObject({
    group: 'networking.istio.io',
    version: 'v1',
    namespace: 'default',
    plural: 'gateways',
    body: gateway('users-own', {}),
  });
  const untouched = [];
  for (const r of [...cp, ...cacerts.resources].reverse()) {
    const out = await activities.undoResource({ mesh: spec.name, spec, resource: r });
    untouched.push(...(out?.untouched ?? []));
  }
  expect(untouched).toEqual([
    {
      cluster: 'c1',
      object: 'CustomResourceDefinition gateways.networking.istio.io',
      reason: expect.stringContaining('default/users-own'),
    },
  ]);
  const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
  // Deleted CRDs go once the API server has cleaned up their resources: count those not on their way out.
  const left = (await ext.listCustomResourceDefinition()).items
    .filter((c) => !c.metadata?.deletionTimestamp)
    .map((c) => c.metadata!.name!)
    .filter((n) => n.endsWith('istio.io'));
  expect(left).toEqual(['gateways.networking.istio.io']);
  await custom.getNamespacedCustomObject({
    group: 'networking.istio.io',
    version: 'v1',
    namespace: 'default',
    plural: 'gateways',
    name: 'users-own',
  });
  await expect(
    kc.makeApiClient(k8s.CoreV1Api).readNamespacedServiceAccount({ name: 'istiod', namespace: 'istio-system' }),
  ).rejects.toMatchObject({ code: 404 });
  // The CA files and the mesh's folder are gone; nothing outside the state directory is touched.
  await activities.undoResource({
    mesh: spec.name,
    spec,
    resource: { type: 'file', path: path.join(state, 'meshes', spec.name, 'ca') },
  });
  expect(fs.existsSync(path.join(state, 'meshes', spec.name))).toBe(false);
  const outside = scratchDir('not-ours');
  await expect(
    activities.undoResource({ mesh: spec.name, spec, resource: { type: 'file', path: outside } }),
  ).rejects.toThrow(/only inside its state directory/);
  expect(fs.existsSync(outside)).toBe(true);
});

test('an existing cluster out of reach keeps its objects: undo fails to be retried, never "already gone"', async () => {
  const { spec: direct, cluster, kc } = await existingCluster('unreach');
  // The mesh reaches its cluster through a kubeconfig file that is then removed.
  const copy = path.join(scratchDir('unreach-kubeconfig'), 'kubeconfig');
  fs.copyFileSync(cluster.kubeconfig, copy);
  const spec = { ...direct, clusters: [{ ...direct.clusters[0]!, existing: { kubeconfig: copy } }] };
  await activities.createRootCa({ mesh: spec.name, spec, step: { id: 'root-ca', kind: 'root-ca' } });
  const cacerts = await activities.installCacerts(req(spec, 'cacerts:c1', 'cacerts'));
  fs.rmSync(copy);
  for (const r of cacerts.resources) {
    const f = await failure(activities.undoResource({ mesh: spec.name, spec, resource: r }));
    expect(f.nonRetryable).toBe(false);
    expect(f.message).toMatch(/^cannot reach cluster c1 to remove \d+ object\(s\): .*kubeconfig: .* does not exist/);
  }
  const secret = await kc
    .makeApiClient(k8s.CoreV1Api)
    .readNamespacedSecret({ name: 'cacerts', namespace: 'istio-system' });
  expect(secret.metadata?.labels?.['meshflow.dev/mesh']).toBe('unreach');

  // A local cluster its provider knows to be deleted took its objects with it: nothing to undo.
  const gone = parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: gone
clusters:
  - { name: c1, provider: local, network: n1 }
app: { sample: none }
`);
  const objects = {
    type: 'objects' as const,
    cluster: 'c1',
    objects: [{ apiVersion: 'v1', kind: 'Namespace', name: 'x' }],
  };
  await expect(activities.undoResource({ mesh: 'gone', spec: gone, resource: objects })).resolves.toEqual({
    untouched: [],
  });
});

test('a step that fails half-way reports the objects it had applied', async () => {
  const dir = scratchDir('manifests');
  const file = path.join(dir, 'app.yaml');
  fs.writeFileSync(
    file,
    [
      'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: first }\ndata: { a: "1" }',
      // The API server refuses this one: object names are DNS-1123 subdomains.
      'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: Not_Valid }\ndata: { b: "2" }',
    ].join('\n---\n'),
  );
  const { spec, kc } = await existingCluster(
    'halfway',
    `app: { sample: none, manifests: [ { file: ${file}, clusters: [c1], namespace: halfway } ] }`,
  );
  const f = await failure(activities.deployApp(req(spec, 'deploy-app:c1', 'deploy-app')));
  // The API server's definite "no" is final: no retry would change it.
  expect(f.nonRetryable).toBe(true);
  expect(f.message).toContain('ConfigMap halfway/Not_Valid was refused by cluster');
  const objects = traced(f).flatMap((r) => (r.type === 'objects' ? r.objects.map((o) => `${o.kind}/${o.name}`) : []));
  expect(objects).toEqual(expect.arrayContaining(['Namespace/halfway', 'ConfigMap/first', 'ConfigMap/Not_Valid']));
  const cm = await kc.makeApiClient(k8s.CoreV1Api).readNamespacedConfigMap({ name: 'first', namespace: 'halfway' });
  expect(cm.metadata?.labels?.['meshflow.dev/mesh']).toBe('halfway');
});

test('a local cluster that fails to start is reported in the trace, and its undo removes what it had made', async () => {
  // An API server that exits at once: the cluster's directory, PKI and etcd are made, then it fails.
  const deps = realDeps(state);
  const local = new LocalProvider(state, { kubeApiserver: '/bin/false', etcd: tool('etcd') });
  const broken = createActivities({ ...deps, providers: { ...deps.providers, local } });
  const spec = parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: nostart
clusters:
  - { name: c1, provider: local, network: n1 }
`);
  const f = await failure(broken.createCluster(req(spec, 'create-cluster:c1', 'create-cluster')));
  expect(traced(f)).toEqual([{ type: 'cluster', cluster: 'c1', provider: 'local' }]);
  expect(fs.existsSync(path.join(state, 'local', 'clusters', 'nostart-c1'))).toBe(true);
  await broken.undoResource({ mesh: spec.name, spec, resource: traced(f)[0] });
  expect(fs.existsSync(path.join(state, 'local', 'clusters', 'nostart-c1'))).toBe(false);
});

/**
 * Applies the control plane as its step does, without waiting for a rollout (no data plane runs
 * beside this cluster, so istiod would never become available).
 */
async function applyControlPlaneWithoutRollout(spec: MeshSpec): Promise<Resource[]> {
  const k = kubeFor(await realDeps(state).providers.existing.access(spec.name, spec.clusters[0]));
  const objects = parseManifests(await istioctlRender(tool('istioctl'), controlPlaneOperator(spec, spec.clusters[0])));
  const refs = await k.apply(
    spec.name,
    objects.filter((o) => !(o.kind === 'Namespace' && o.metadata?.name === 'istio-system')),
  );
  return [{ type: 'objects', cluster: 'c1', objects: refs }];
}

test('rendered manifests are read as objects, and broken YAML is refused with its line', () => {
  const objects = parseManifests('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# only a comment\n---\n');
  expect(objects.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual(['ConfigMap/a']);
  expect(() => parseManifests('apiVersion: v1\nkind: ConfigMap\n---\nmetadata: [a,\n')).toThrow(
    /manifest is not valid YAML at line \d+/,
  );
});
