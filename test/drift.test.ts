// Drift detection against a real API server: objects applied through Kube.apply (a Namespace with
// a label, Secrets, a Service, a Deployment, a ConfigMap, a CRD and an Istio-like Gateway of it),
// a baseline, then hand changes. What controllers do (status, the revision annotation, defaults, a
// label of someone else's beside ours) and meshflow's own re-apply are no drift; a deleted object is
// missing, a field another manager took over is changed, an object of the same name without the
// mesh's labels is foreign, a cluster that does not answer is unreachable; a re-apply repairs.
// Plus the FieldsV1 walker on managedFields the API server wrote, and the check -> step mapping.
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import YAML from 'yaml';
import { driftActivities } from '../src/activities/drift';
import { createActivities } from '../src/activities/mesh-activities';
import { FIELD_MANAGER, Kube } from '../src/adapters/kube';
import { appliedFieldSet, appliedValues, canonicalJson, ownedValues } from '../src/drift/fields';
import { ledgerObjects, objectKey } from '../src/drift/objects';
import { repairsForChecks, stepsForChecks, stepsForDrift } from '../src/drift/repair';
import type { DriftBaseline, DriftReport } from '../src/drift/types';
import { type LocalCluster, LocalClusters } from '../src/local/clusters';
import { parseMeshSpec } from '../src/spec/load';
import type { CheckResult, LedgerEntry, ObjectRef } from '../src/steps/contract';
import { scratchDir, tool } from './helpers/env';
import { realDeps } from './helpers/mesh';

/** A Service as kube-apiserver v1.34.4 stored it after Kube.apply (managedFields as written by the server). */
const CAPTURED_SERVICE = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: {
    name: 'svc',
    namespace: 'istio-system',
    resourceVersion: '231',
    labels: { 'app.kubernetes.io/managed-by': 'meshflow', 'meshflow.dev/mesh': 'm1' },
    managedFields: [
      {
        manager: 'meshflow',
        operation: 'Apply',
        apiVersion: 'v1',
        time: '2026-12-03T10:40:52Z',
        fieldsType: 'FieldsV1',
        fieldsV1: {
          'f:metadata': { 'f:labels': { 'f:app.kubernetes.io/managed-by': {}, 'f:meshflow.dev/mesh': {} } },
          'f:spec': {
            'f:ports': {
              'k:{"port":15021,"protocol":"TCP"}': { '.': {}, 'f:name': {}, 'f:port': {} },
              'k:{"port":15443,"protocol":"TCP"}': { '.': {}, 'f:name': {}, 'f:port': {}, 'f:targetPort': {} },
            },
            'f:selector': {},
            'f:type': {},
          },
        },
      },
    ],
  },
  spec: {
    type: 'LoadBalancer',
    selector: { app: 'x' },
    clusterIP: '10.0.0.17',
    sessionAffinity: 'None',
    ports: [
      { name: 'tls', protocol: 'TCP', port: 15443, targetPort: 15443, nodePort: 31000 },
      { name: 'st', protocol: 'TCP', port: 15021, targetPort: 15021, nodePort: 31001 },
    ],
  },
  status: { loadBalancer: {} },
};

describe('the FieldsV1 walker', () => {
  test('takes exactly the owned values: list items by key, atomic maps whole, no defaults or status', () => {
    const owned = appliedValues(CAPTURED_SERVICE, FIELD_MANAGER)!;
    expect(owned.values).toEqual({
      'f:metadata': { 'f:labels': { 'f:app.kubernetes.io/managed-by': 'meshflow', 'f:meshflow.dev/mesh': 'm1' } },
      'f:spec': {
        'f:ports': {
          'k:{"port":15021,"protocol":"TCP"}': { 'f:name': 'st', 'f:port': 15021 },
          'k:{"port":15443,"protocol":"TCP"}': { 'f:name': 'tls', 'f:port': 15443, 'f:targetPort': 15443 },
        },
        'f:selector': { app: 'x' },
        'f:type': 'LoadBalancer',
      },
    });
    expect(owned.leaves).toBe(9);
    // The server's defaults (clusterIP, nodePort, the second port's targetPort) are not meshflow's.
    expect(canonicalJson(owned.values)).not.toMatch(/clusterIP|nodePort|31000|sessionAffinity/);
  });

  test('leaves out excluded paths, and a field another manager took changes the result', () => {
    const labels = ['f:metadata', 'f:labels'];
    const owned = appliedValues(CAPTURED_SERVICE, FIELD_MANAGER, [[...labels, 'f:meshflow.dev/mesh']])!;
    expect(Object.keys((owned.values['f:metadata'] as Record<string, object>)['f:labels'])).toEqual([
      'f:app.kubernetes.io/managed-by',
    ]);
    const edited = structuredClone(CAPTURED_SERVICE);
    edited.spec.ports[0].port = 8443; // the item k:{"port":15443,...} is gone from the object
    expect(canonicalJson(appliedValues(edited, FIELD_MANAGER)!.values)).not.toBe(canonicalJson(owned.values));
  });

  test('set members, indexes and nodes owned only as themselves', () => {
    const obj = { metadata: { finalizers: ['a', 'b'] }, spec: { args: ['x', 'y'], extra: { deep: 1 } } };
    const set = {
      'f:metadata': { 'f:finalizers': { '.': {}, 'v:"b"': {}, 'v:"c"': {} } },
      'f:spec': { 'f:args': { 'i:1': {} }, 'f:extra': { '.': {} } },
    };
    expect(ownedValues(obj, set).values).toEqual({
      'f:metadata': { 'f:finalizers': { 'v:"b"': true } },
      'f:spec': { 'f:args': { 'i:1': 'y' }, 'f:extra': '{}' },
    });
  });

  test('a Secret applied with stringData is read from data; other managers and subresources are not meshflow', () => {
    const secret = {
      kind: 'Secret',
      metadata: {
        managedFields: [
          { manager: 'meshflow', operation: 'Update', fieldsType: 'FieldsV1', fieldsV1: { 'f:type': {} } },
          {
            manager: 'meshflow',
            operation: 'Apply',
            subresource: 'status',
            fieldsType: 'FieldsV1',
            fieldsV1: { 'f:x': {} },
          },
          {
            manager: 'meshflow',
            operation: 'Apply',
            fieldsType: 'FieldsV1',
            fieldsV1: { 'f:stringData': { 'f:a.pem': {} }, 'f:type': {} },
          },
        ],
      },
      data: { 'a.pem': 'QUFB', 'b.pem': 'QkJC' },
      type: 'Opaque',
    };
    expect(appliedValues(secret, FIELD_MANAGER)!.values).toEqual({
      'f:data': { 'f:a.pem': 'QUFB' },
      'f:type': 'Opaque',
    });
    expect(appliedFieldSet(secret, 'kubectl-edit')).toBeUndefined();
  });

  test('canonical JSON sorts keys at every depth', () => {
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}',
    );
  });
});

// ---------------------------------------------------------------------------------------------

const twoNetworks = parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: rp
ttl: 1h
clusters:
  - { name: c1, provider: local, network: n1 }
  - { name: c2, provider: local, network: n2 }
  - { name: c3, provider: local, network: n2 }
istio: { topology: multi-primary }
app: { sample: none }
`);

const failed = (name: string, cluster: string | undefined, detail: string, hint?: string): CheckResult => ({
  name,
  ...(cluster ? { cluster } : {}),
  status: 'failed',
  detail,
  ...(hint ? { hint } : {}),
});

describe('failed checks -> the steps that repair them', () => {
  test('objects a step applied map to that step, in plan order', () => {
    const checks = [
      failed('cross-network-gateway', 'c2', 'Gateway cross-network-gateway is not 15443 AUTO_PASSTHROUGH'),
      failed('network-label', 'c2', 'istio-system has topology.istio.io/network=(none), want n2'),
      failed('cacerts', 'c1', 'istio-system/cacerts does not exist (404 secrets "cacerts" not found)'),
      failed('remote-secret', 'c1', 'istio-system/istio-remote-secret-c3 does not exist in c1'),
      failed('eastwest-address', 'c3', '404 services "istio-eastwestgateway" not found'),
      failed('discovery', 'c2', 'istiod of c2 does not read c1 (timeout), c3 (not listed)'),
      { name: 'same-root', status: 'passed', detail: 'all 3 clusters trust the same root' } as CheckResult,
    ];
    expect(repairsForChecks(twoNetworks, checks)).toEqual([
      { check: 'cross-network-gateway', cluster: 'c2', steps: ['expose-services:c2'] },
      { check: 'network-label', cluster: 'c2', steps: ['cacerts:c2'] },
      { check: 'cacerts', cluster: 'c1', steps: ['cacerts:c1'] },
      { check: 'remote-secret', cluster: 'c1', steps: ['link:c3->c1'] },
      { check: 'eastwest-address', cluster: 'c3', steps: ['eastwest-gateway:c3'] },
      { check: 'discovery', cluster: 'c2', steps: ['link:c1->c2', 'link:c3->c2'] },
    ]);
    expect(stepsForChecks(twoNetworks, checks)).toEqual([
      'cacerts:c1',
      'cacerts:c2',
      'expose-services:c2',
      'eastwest-gateway:c3',
      'link:c1->c2',
      'link:c3->c1',
      'link:c3->c2',
    ]);
  });

  test('what no step makes gets the fix a person must make', () => {
    const hint = 'the cluster needs a load balancer implementation, or set spec.externalIPs on the Service';
    const checks = [
      failed('eastwest-address', 'c1', 'the east-west gateway has no address (load balancer pending)', hint),
      failed('remote-secret', 'c2', 'istio-remote-secret-c1 may delete secrets in c1', 'check the ClusterRoleBindings'),
      failed(
        'remote-secret',
        'c3',
        "istio-remote-secret-c1 cannot read c1's API (ECONNREFUSED)",
        "c1's API server address in the secret is not reachable from c3: set clusters[c1].apiServerAddress",
      ),
      failed('injection', 'c1', 'sample/a has no istio-proxy', 'restart the Deployments'),
      failed('istiod-available', 'c1', 'istiod is not available', 'kubectl -n istio-system describe deploy istiod'),
      failed('cross-network-gateway', 'c1', 'not found'),
    ];
    const oneNetwork = parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: rp1
ttl: 1h
clusters:
  - { name: c1, provider: local, network: n1 }
  - { name: c2, provider: local, network: n1 }
  - { name: c3, provider: local, network: n1 }
app: { sample: none }
`);
    const repairs = repairsForChecks(oneNetwork, checks);
    expect(repairs.map((r) => [r.check, r.steps, r.fix])).toEqual([
      ['eastwest-address', [], hint],
      ['remote-secret', [], 'check the ClusterRoleBindings'],
      ['remote-secret', [], expect.stringContaining('apiServerAddress')],
      ['injection', [], 'restart the Deployments'],
      ['istiod-available', [], 'kubectl -n istio-system describe deploy istiod'],
      // One network: no expose-services step exists to re-run.
      ['cross-network-gateway', [], 'no step of this mesh repairs cross-network-gateway'],
    ]);
    // A rejected token is the link's to renew.
    const rejected = failed(
      'remote-secret',
      'c2',
      "istio-remote-secret-c1 cannot read c1's API (401)",
      'the reader token was rejected',
    );
    expect(repairsForChecks(oneNetwork, [rejected])[0].steps).toEqual(['link:c1->c2']);
  });

  test('a drift report re-runs the owners of missing and changed objects only', () => {
    const item = (kind: DriftReport['items'][number]['kind'], step: string) => ({
      cluster: 'c1',
      object: `c1/v1/Secret/ns/${kind}`,
      kind,
      step,
      detail: '',
    });
    const report: DriftReport = {
      checkedAt: '',
      objects: 5,
      requests: 3,
      items: [
        item('unreachable', ''),
        item('changed', 'cacerts:c1'),
        item('foreign', 'control-plane:c1'),
        item('missing', 'expose-services:c1'),
        item('missing', 'cacerts:c1'),
      ],
    };
    expect(stepsForDrift(report)).toEqual(['cacerts:c1', 'expose-services:c1']);
  });

  test('the ledger names each object once, with the last step that applied it', () => {
    const ns: ObjectRef = { apiVersion: 'v1', kind: 'Namespace', name: 'istio-system' };
    const ledger: LedgerEntry[] = [
      { step: 'cacerts:c1', resource: { type: 'objects', cluster: 'c1', objects: [ns] }, createdAt: '' },
      { step: 'root-ca', resource: { type: 'file', path: '/x' }, createdAt: '' },
      { step: 'control-plane:c1', resource: { type: 'objects', cluster: 'c1', objects: [ns] }, createdAt: '' },
    ];
    expect(ledgerObjects(ledger)).toEqual([
      { key: 'c1/v1/Namespace//istio-system', cluster: 'c1', ref: ns, step: 'control-plane:c1' },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------

const MESH = 'dm';
let clusters: LocalClusters;
let cluster: LocalCluster;
let dir: string;
let kube: Kube;
let kc: k8s.KubeConfig;

const SECRET_VALUE = 'very-secret-key-material';

const gatewayCrd = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'gateways.networking.istio.io' },
  spec: {
    group: 'networking.istio.io',
    names: { kind: 'Gateway', plural: 'gateways', singular: 'gateway', listKind: 'GatewayList' },
    scope: 'Namespaced',
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
      },
    ],
  },
};

const objects = {
  namespace: {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'drift', labels: { 'topology.istio.io/network': 'n1' } },
  },
  cacerts: {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'cacerts', namespace: 'drift' },
    type: 'Opaque',
    stringData: { 'ca-key.pem': SECRET_VALUE },
  },
  other: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'other', namespace: 'drift' }, stringData: { k: 'v' } },
  config: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'istio', namespace: 'drift' }, data: { mesh: 'x' } },
  service: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'istio-eastwestgateway', namespace: 'drift' },
    spec: {
      type: 'LoadBalancer',
      selector: { istio: 'eastwestgateway' },
      ports: [
        { name: 'tls', port: 15443, targetPort: 15443 },
        { name: 'status-port', port: 15021 },
      ],
    },
  },
  deployment: {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'istiod', namespace: 'drift' },
    spec: {
      selector: { matchLabels: { app: 'istiod' } },
      template: {
        metadata: { labels: { app: 'istiod' } },
        spec: { containers: [{ name: 'discovery', image: 'istio/pilot', args: ['discovery'] }] },
      },
    },
  },
  gateway: {
    apiVersion: 'networking.istio.io/v1',
    kind: 'Gateway',
    metadata: { name: 'cross-network-gateway', namespace: 'drift' },
    spec: {
      selector: { istio: 'eastwestgateway' },
      servers: [{ port: { number: 15443, name: 'tls', protocol: 'TLS' }, tls: { mode: 'AUTO_PASSTHROUGH' } }],
    },
  },
};

const refOf = (o: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } }): ObjectRef => ({
  apiVersion: o.apiVersion,
  kind: o.kind,
  ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}),
  name: o.metadata.name,
});
const key = (o: Parameters<typeof refOf>[0], c = 'c1') => objectKey(c, refOf(o));

let spec: ReturnType<typeof parseMeshSpec>;
let ledger: LedgerEntry[];

const entry = (step: string, c: string, objs: Array<Parameters<typeof refOf>[0]>): LedgerEntry => ({
  step,
  resource: { type: 'objects', cluster: c, objects: objs.map(refOf) },
  createdAt: new Date().toISOString(),
});

/** A kubeconfig like the cluster's whose server nothing listens on. */
function deadKubeconfig(c: LocalCluster): string {
  type Doc = { clusters: Array<{ cluster: { server: string } }> };
  const doc = YAML.parse(fs.readFileSync(c.kubeconfig, 'utf8')) as Doc;
  for (const e of doc.clusters) e.cluster.server = 'https://127.0.0.1:9';
  const file = path.join(dir, 'dead.kubeconfig');
  fs.writeFileSync(file, YAML.stringify(doc), { mode: 0o600 });
  return file;
}

/** A JSON merge patch as another field manager sends it (kubectl label --overwrite, kubectl edit). */
const mergePatch = (obj: k8s.KubernetesObject, manager: string) =>
  kube.objects.patch(obj, undefined, undefined, manager, undefined, k8s.PatchStrategy.MergePatch);

beforeAll(async () => {
  dir = scratchDir('drift');
  clusters = new LocalClusters(dir, { kubeApiserver: tool('kube-apiserver'), etcd: tool('etcd') });
  [cluster] = await clusters.start(['drift-one']);
  kube = Kube.fromFile(cluster.kubeconfig);
  kc = kube.config;
  spec = parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: ${MESH}
clusters:
  - { name: c1, provider: existing, network: n1, existing: { kubeconfig: ${cluster.kubeconfig} } }
  - { name: c2, provider: existing, network: n1, existing: { kubeconfig: ${deadKubeconfig(cluster)} } }
app: { sample: none }
`);
  const { namespace, cacerts, other, config, service, deployment, gateway } = objects;
  await kube.apply(MESH, [namespace, cacerts, other, config]);
  await kube.apply(MESH, [gatewayCrd, service, deployment]);
  await kube.apply(MESH, [gateway]);
  ledger = [
    entry('cacerts:c1', 'c1', [namespace, cacerts, other, config]),
    entry('control-plane:c1', 'c1', [gatewayCrd, service, deployment]),
    entry('expose-services:c1', 'c1', [gateway]),
    entry('cacerts:c2', 'c2', [namespace]),
  ];
});

afterAll(async () => {
  await clusters?.delete(['drift-one']);
});

describe('drift on a real API server', () => {
  let baseline: DriftBaseline;
  const drift = () => driftActivities(realDeps(dir), { probeTimeoutMs: 1_500 });
  const check = () => drift().checkDrift({ mesh: MESH, spec, ledger, baseline });

  test('the baseline digests every reachable object and holds none of their contents', async () => {
    // Registered with the mesh activities, as the worker serves them.
    expect(createActivities(realDeps(dir))).toMatchObject({ baselineDrift: expect.any(Function) });
    const result = await drift().baselineDrift({ mesh: MESH, spec, ledger });
    baseline = result.baseline;
    const keys = Object.keys(baseline.objects);
    expect(keys).toHaveLength(8);
    for (const k of keys) {
      expect(baseline.objects[k]).toEqual({
        step: expect.any(String),
        cluster: 'c1',
        state: 'present',
        digest: expect.stringMatching(/^[0-9a-f]{16}$/),
        fields: expect.any(Number),
      });
    }
    expect(baseline.objects[key(objects.gateway)].step).toBe('expose-services:c1');
    expect(new Set(keys.map((k) => baseline.objects[k].digest)).size).toBe(8);
    const text = JSON.stringify(result);
    expect(text).not.toContain(SECRET_VALUE);
    expect(text).not.toContain(Buffer.from(SECRET_VALUE).toString('base64'));
    expect(result.unreachable).toEqual([
      {
        cluster: 'c2',
        object: '',
        kind: 'unreachable',
        step: '',
        detail: expect.stringMatching(/^1 object\(s\) not checked: cluster c2 is unreachable: .*ECONNREFUSED/),
      },
    ]);
  });

  test('what controllers and meshflow itself do is no drift', async () => {
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    // The deployment controller's revision annotation, and its status.
    await mergePatch(
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'istiod', namespace: 'drift', annotations: { 'deployment.kubernetes.io/revision': '1' } },
      },
      'kube-controller-manager',
    );
    const d = await apps.readNamespacedDeployment({ name: 'istiod', namespace: 'drift' });
    await apps.replaceNamespacedDeploymentStatus({
      name: 'istiod',
      namespace: 'drift',
      body: { ...d, status: { observedGeneration: 1, replicas: 1, readyReplicas: 1, availableReplicas: 1 } },
    });
    // A load balancer's address on the Service's status; someone else's label beside ours.
    const svc = await core.readNamespacedService({ name: 'istio-eastwestgateway', namespace: 'drift' });
    await core.replaceNamespacedServiceStatus({
      name: 'istio-eastwestgateway',
      namespace: 'drift',
      body: { ...svc, status: { loadBalancer: { ingress: [{ ip: '172.18.0.10' }] } } },
    });
    await mergePatch(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'drift', labels: { team: 'a' } } },
      'kubectl-label',
    );
    // meshflow applying the same objects again (a retried step).
    await kube.apply(MESH, [objects.namespace, objects.cacerts, objects.service]);
    const report = await check();
    expect(report.items.map((i) => i.kind)).toEqual(['unreachable']);
    expect(report.objects).toBe(9); // and the one in c2
    expect(report.requests).toBeGreaterThan(0);
  });

  test('deleted, taken over and replaced objects are missing, changed and foreign, each with its step', async () => {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await core.deleteNamespacedSecret({ name: 'other', namespace: 'drift' });
    // kubectl label --overwrite of a label meshflow applied.
    await mergePatch(
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'drift', labels: { 'topology.istio.io/network': 'n9' } },
      },
      'kubectl-label',
    );
    // kubectl edit of the Gateway's TLS mode.
    await mergePatch(
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'Gateway',
        metadata: { name: 'cross-network-gateway', namespace: 'drift' },
        spec: { servers: [{ port: { number: 15443, name: 'tls', protocol: 'TLS' }, tls: { mode: 'PASSTHROUGH' } }] },
      } as k8s.KubernetesObject,
      'kubectl-edit',
    );
    // Someone else's ConfigMap in place of ours.
    await core.deleteNamespacedConfigMap({ name: 'istio', namespace: 'drift' });
    await core.createNamespacedConfigMap({
      namespace: 'drift',
      body: { metadata: { name: 'istio', labels: { team: 'a' } }, data: { mesh: 'theirs' } },
    });

    const report = await check();
    const byKind = (kind: string) => report.items.filter((i) => i.kind === kind).map((i) => [i.object, i.step]);
    expect(byKind('missing')).toEqual([[key(objects.other), 'cacerts:c1']]);
    expect(byKind('changed')).toEqual([
      [key(objects.namespace), 'cacerts:c1'],
      [key(objects.gateway), 'expose-services:c1'],
    ]);
    expect(byKind('foreign')).toEqual([[key(objects.config), 'cacerts:c1']]);
    expect(byKind('unreachable')).toEqual([['', '']]);
    const changed = report.items.find((i) => i.object === key(objects.namespace))!;
    expect(changed.detail).toContain('kubectl-label (Update)');
    expect(report.items.find((i) => i.kind === 'foreign')!.detail).toContain('app.kubernetes.io/managed-by=(none)');
    expect(JSON.stringify(report)).not.toContain('theirs');
    expect(stepsForDrift(report)).toEqual(['cacerts:c1', 'expose-services:c1']);
    // Of c1 alone: the probe, discovery once per group version (4), a LIST of the two Secrets and a GET of the
    // missing one, a GET of each object alone in its kind and namespace (6).
    const c1 = await drift().checkDrift({ mesh: MESH, spec, ledger: ledger.slice(0, 3), baseline });
    expect(c1.requests).toBe(13);
  });

  test('re-applying what the owner steps apply repairs all but the foreign object', async () => {
    await kube.apply(MESH, [objects.namespace, objects.cacerts, objects.other]);
    await kube.apply(MESH, [objects.gateway]);
    const report = await check();
    expect(report.items.map((i) => [i.kind, i.object])).toEqual([
      ['unreachable', ''],
      ['foreign', key(objects.config)],
    ]);
  });

  test('reads grow with kinds and namespaces, not with objects', async () => {
    const many = Array.from({ length: 60 }, (_, i) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: `cm-${i}`, namespace: 'drift' },
      data: { i: String(i) },
    }));
    await kube.apply(MESH, many);
    const bulk = [entry('deploy-app:c1', 'c1', many)];
    const started = Date.now();
    const base = await drift().baselineDrift({ mesh: MESH, spec, ledger: bulk });
    const report = await drift().checkDrift({ mesh: MESH, spec, ledger: bulk, baseline: base.baseline });
    // The probe, discovery of v1, one LIST.
    expect([base.requests, report.requests, report.objects, report.items]).toEqual([3, 3, 60, []]);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  test("the walker reads the API server's own managedFields", async () => {
    const svc = (await kube.read(refOf(objects.service)))!;
    const owned = appliedValues(svc, FIELD_MANAGER)!;
    expect((owned.values['f:spec'] as Record<string, unknown>)['f:ports']).toEqual({
      'k:{"port":15021,"protocol":"TCP"}': { 'f:name': 'status-port', 'f:port': 15021 },
      'k:{"port":15443,"protocol":"TCP"}': { 'f:name': 'tls', 'f:port': 15443, 'f:targetPort': 15443 },
    });
    expect(canonicalJson(owned.values)).not.toMatch(/clusterIP|172\.18\.0\.10/);
    const secret = (await kube.read(refOf(objects.cacerts)))!;
    expect(appliedValues(secret, FIELD_MANAGER)!.values['f:data']).toEqual({
      'f:ca-key.pem': Buffer.from(SECRET_VALUE).toString('base64'),
    });
  });
});
