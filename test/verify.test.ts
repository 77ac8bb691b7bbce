// `verify` on real API servers: a mesh's state made by hand on two local clusters (istio-system
// with its network label, cacerts, an available istiod, the reader ServiceAccount with its
// ClusterRole and remote secrets holding TokenRequest tokens, as linkClusters makes them). A
// fault-injecting HTTPS proxy in front of one API server answers 503/429, resets connections or
// never answers: checks retry and pass, and errors that persist make verify throw instead of
// failing a check. Rights beyond reading, granted cluster-wide or in a single namespace, fail the
// remote-secret check naming verb, resource and namespace; a missing cacerts still fails.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import YAML from 'yaml';
import type { ClusterAccess } from '../src/adapters/providers';
import type { TrafficPort } from '../src/checks/traffic';
import { ChecksUnavailableError } from '../src/checks/result';
import { readerRights, reviewReader } from '../src/checks/reader-rights';
import { type VerifyOptions, classifyError } from '../src/checks/run';
import { type VerifyScope, verifyMesh } from '../src/checks/verify';
import {
  ISTIO_NAMESPACE,
  NETWORK_LABEL,
  READER_CLUSTER_ROLE,
  READER_SERVICE_ACCOUNT,
  remoteKubeconfig,
  remoteSecretName,
} from '../src/istio/manifests';
import { FaultProxy } from '../src/chaos/fault-proxy';
import { type LocalCluster, LocalClusters } from '../src/local/clusters';
import { parseMeshSpec } from '../src/spec/load';
import type { CheckResult } from '../src/workflows/types';
import { scratchDir, tool } from './helpers/env';

const NAMES = ['verify-one', 'verify-two'];
const spec = parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: vt
ttl: 1h
clusters:
  - { name: cluster1, provider: local, network: network1 }
  - { name: cluster2, provider: local, network: network1 }
istio: { topology: multi-primary }
app: { sample: none }
`);

/** Small budgets so that a persistent error is given up on quickly. */
const FAST: VerifyOptions = { retryBudgetMs: 8_000, initialBackoffMs: 50, maxBackoffMs: 400, requestTimeoutMs: 2_000 };

const noTraffic: TrafficPort = {
  exec: () => Promise.reject(new Error('no pods on local clusters')),
  podNames: () => Promise.resolve([]),
  ingressAddress: () => Promise.resolve(undefined),
  get: () => Promise.reject(new Error('no traffic on local clusters')),
};

let clusters: LocalClusters;
let locals: Record<string, LocalCluster>;
let proxy: FaultProxy;
let dir: string;
/** Where verify reaches each cluster: cluster1 through the proxy (its remote secret too), cluster2 directly. */
let accessTo: Record<string, ClusterAccess>;

const kubeOf = (cluster: string) => {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(locals[cluster].kubeconfig);
  return kc;
};
const core = (cluster: string) => kubeOf(cluster).makeApiClient(k8s.CoreV1Api);
const rbac = (cluster: string) => kubeOf(cluster).makeApiClient(k8s.RbacAuthorizationV1Api);
const b64 = (s: string) => Buffer.from(s).toString('base64');
const caData = (c: LocalCluster) => b64(fs.readFileSync(c.pki.caCert, 'utf8'));
const readerSubject = { kind: 'ServiceAccount', name: READER_SERVICE_ACCOUNT, namespace: ISTIO_NAMESPACE };

function proxiedKubeconfig(c: LocalCluster, server: string, label: string): string {
  type Doc = { clusters: Array<{ cluster: { server: string } }> };
  const doc = YAML.parse(fs.readFileSync(c.kubeconfig, 'utf8')) as Doc;
  for (const entry of doc.clusters) entry.cluster.server = server;
  const file = path.join(dir, `${c.name}-${label}.kubeconfig`);
  fs.writeFileSync(file, YAML.stringify(doc), { mode: 0o600 });
  return file;
}

const cacerts = {
  'ca-cert.pem': b64('ca'),
  'ca-key.pem': b64('key'),
  'root-cert.pem': b64('ROOT'),
  'cert-chain.pem': b64('chain'),
};

/** What the control-plane install, cacerts and linkClusters leave behind, made by hand. */
async function meshState(cluster: string): Promise<void> {
  const api = core(cluster);
  await api.createNamespace({ body: { metadata: { name: ISTIO_NAMESPACE, labels: { [NETWORK_LABEL]: 'network1' } } } });
  await api.createNamespacedSecret({
    namespace: ISTIO_NAMESPACE,
    body: { metadata: { name: 'cacerts' }, data: cacerts },
  });
  const apps = kubeOf(cluster).makeApiClient(k8s.AppsV1Api);
  const istiod = await apps.createNamespacedDeployment({
    namespace: ISTIO_NAMESPACE,
    body: {
      metadata: { name: 'istiod' },
      spec: {
        selector: { matchLabels: { app: 'istiod' } },
        template: {
          metadata: { labels: { app: 'istiod' } },
          spec: { containers: [{ name: 'discovery', image: 'istio/pilot' }] },
        },
      },
    },
  });
  await apps.replaceNamespacedDeploymentStatus({
    name: 'istiod',
    namespace: ISTIO_NAMESPACE,
    body: { ...istiod, status: { conditions: [{ type: 'Available', status: 'True' }] } },
  });
  await api.createNamespacedServiceAccount({
    namespace: ISTIO_NAMESPACE,
    body: { metadata: { name: READER_SERVICE_ACCOUNT } },
  });
  // The reading part of Istio's reader ClusterRole.
  await rbac(cluster).createClusterRole({
    body: {
      metadata: { name: READER_CLUSTER_ROLE },
      rules: [
        {
          apiGroups: [''],
          resources: ['endpoints', 'pods', 'services', 'nodes', 'namespaces', 'secrets'],
          verbs: ['get', 'list', 'watch'],
        },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
      ],
    },
  });
  await rbac(cluster).createClusterRoleBinding({
    body: {
      metadata: { name: 'meshflow-istio-reader-vt' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: READER_CLUSTER_ROLE },
      subjects: [readerSubject],
    },
  });
}

/**
 * A remote secret for `source` in `target`, as linkClusters makes it: a TokenRequest token in a
 * kubeconfig named after the source, pointing at `server`.
 */
async function link(source: string, target: string, server: string): Promise<void> {
  const tr = await core(source).createNamespacedServiceAccountToken({
    name: READER_SERVICE_ACCOUNT,
    namespace: ISTIO_NAMESPACE,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  await core(target).createNamespacedSecret({
    namespace: ISTIO_NAMESPACE,
    body: {
      metadata: {
        name: remoteSecretName(source),
        labels: { 'istio/multiCluster': 'true' },
        annotations: { 'networking.istio.io/cluster': source },
      },
      type: 'Opaque',
      stringData: { [source]: remoteKubeconfig(source, server, caData(locals[source]), tr.status!.token) },
    },
  });
}

let beats: unknown[] = [];
const heartbeat = (detail?: unknown) => beats.push(detail);

const verify = (options: VerifyOptions & VerifyScope = FAST) =>
  verifyMesh(spec, (c) => accessTo[c], noTraffic, heartbeat, options);
const byName = (results: CheckResult[], name: string, cluster?: string) =>
  results.find((r) => r.name === name && r.cluster === cluster);
// The mesh here is made by hand on API servers alone: no istiod runs and no pod exists, so the
// checks that ask Istio itself have nothing to ask. They are proven where istiod runs, in the
// end-to-end tests (mesh-e2e-*), each break included; here they must at least not pass.
const ISTIO_CHECKS = new Set(['discovery', 'cross-network-endpoints', 'injection', 'analyze', 'trust-chain']);
const notPassed = (results: CheckResult[]) =>
  results.filter((r) => r.status !== 'passed' && r.name !== 'traffic' && !ISTIO_CHECKS.has(r.name));

beforeAll(async () => {
  dir = scratchDir('verify');
  clusters = new LocalClusters(dir, { kubeApiserver: tool('kube-apiserver'), etcd: tool('etcd') });
  const started = await clusters.start(NAMES);
  locals = { cluster1: started[0], cluster2: started[1] };
  proxy = await new FaultProxy(locals.cluster1).start();
  const { cluster1, cluster2 } = locals;
  accessTo = {
    cluster1: {
      kubeconfig: proxiedKubeconfig(cluster1, proxy.url, 'proxied'),
      apiServer: proxy.url,
      caData: caData(cluster1),
      local: true,
    },
    cluster2: { kubeconfig: cluster2.kubeconfig, apiServer: cluster2.server, caData: caData(cluster2), local: true },
  };
  await Promise.all(['cluster1', 'cluster2'].map(meshState));
  await link('cluster1', 'cluster2', accessTo.cluster1.apiServer);
  await link('cluster2', 'cluster1', accessTo.cluster2.apiServer);
}, 180_000);

afterAll(async () => {
  await proxy?.stop();
  await clusters?.delete(NAMES);
});

beforeEach(() => {
  beats = [];
  if (proxy) {
    proxy.faults = [];
    proxy.injected.length = 0;
  }
});

test('the mesh made by hand passes every control-plane check', async () => {
  const results = await verify();
  expect(notPassed(results)).toEqual([]);
  // No istiod pod runs (no node here), so discovery has no istiod to forward to and fails saying so;
  // trust-chain, without the mesh root (no trust store here), says it has nothing to verify against.
  const istio = results.filter((r) => ISTIO_CHECKS.has(r.name));
  expect(istio.map((r) => `${r.name} ${r.status}`)).toEqual([
    'discovery failed',
    'discovery failed',
    'trust-chain not-supported',
    'trust-chain not-supported',
  ]);
  expect(byName(results, 'discovery', 'cluster2')).toMatchObject({
    detail: 'no istiod pod of revision default is running and ready in cluster2',
    hint: expect.stringContaining('kubectl -n istio-system get pods -l app=istiod,istio.io/rev=default'),
  });
  expect(byName(results, 'trust-chain', 'cluster1')?.detail).toContain(
    "root certificate is not in this worker's trust store",
  );
  // In the registry's order, each result with its catalog code.
  expect(results.map((r) => `${r.code} ${r.name}${r.cluster ? `:${r.cluster}` : ''}`)).toEqual([
    'MF0101 cacerts:cluster1',
    'MF0101 cacerts:cluster2',
    'MF0201 network-label:cluster1',
    'MF0201 network-label:cluster2',
    'MF0202 istiod-available:cluster1',
    'MF0202 istiod-available:cluster2',
    'MF0102 same-root',
    'MF0301 remote-secret:cluster2',
    'MF0301 remote-secret:cluster1',
    'MF0302 discovery:cluster1',
    'MF0302 discovery:cluster2',
    'MF0103 trust-chain:cluster1',
    'MF0103 trust-chain:cluster2',
    'MF0501 traffic',
  ]);
  expect(byName(results, 'remote-secret', 'cluster2')?.detail).toMatch(
    /may not create, change, delete, escalate, bind or impersonate, cluster-wide or in any of its \d+ /,
  );
});

test('only the checks named by code run; same-root reads the roots itself', async () => {
  const results = await verify({ ...FAST, only: ['MF0102', 'MF0201'] });
  expect(results.map((r) => `${r.code} ${r.name}${r.cluster ? `:${r.cluster}` : ''} ${r.status}`)).toEqual([
    'MF0201 network-label:cluster1 passed',
    'MF0201 network-label:cluster2 passed',
    'MF0102 same-root passed',
  ]);
});

test('5xx, 429, resets and timeouts are transient errors; 4xx, TLS and unknown hosts are definite', () => {
  const api = (code: number) => new k8s.ApiException(code, 'x', {}, {});
  expect([500, 502, 503, 504, 429, 408].map((c) => classifyError(api(c)))).toEqual(Array(6).fill('transient'));
  expect([400, 401, 403, 404, 409, 422].map((c) => classifyError(api(c)))).toEqual(Array(6).fill('definite'));
  const sys = (code: string, message = code) => Object.assign(new Error(message), { code });
  for (const code of ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN']) {
    expect(classifyError(sys(code))).toBe('transient');
  }
  expect(classifyError(new Error('request to https://x failed, reason: socket hang up'))).toBe('transient');
  expect(classifyError(Object.assign(new Error('aborted'), { name: 'AbortError' }))).toBe('transient');
  expect(classifyError(new Error('outer', { cause: sys('ECONNRESET') }))).toBe('transient');
  expect(classifyError(sys('ENOTFOUND'))).toBe('definite');
  expect(classifyError(sys('UNABLE_TO_VERIFY_LEAF_SIGNATURE'))).toBe('definite');
  expect(classifyError(new TypeError('x is undefined'))).toBe('definite');
});

test('checks that meet 503s, 429s, resets and a request that never answers retry, heartbeat, and pass', async () => {
  const any = () => true;
  proxy.faults = [
    { kind: '503', when: any, times: 2 },
    { kind: 'reset', when: any, times: 2 },
    { kind: '429', when: any, times: 1 },
    { kind: 'hang', when: (req) => req.method === 'GET' && req.url!.includes('/namespaces/istio-system'), times: 1 },
    // The reader's requests go through the proxy too: a reset in the middle of the namespace fan-out.
    { kind: 'reset', when: (req) => req.url!.includes('selfsubjectrulesreviews'), times: 2 },
    { kind: '503', when: (req) => req.url!.includes('selfsubjectaccessreviews'), times: 3 },
  ];
  const results = await verify({ ...FAST, requestTimeoutMs: 1_000 });
  expect(proxy.faults.map((f) => f.times)).toEqual([0, 0, 0, 0, 0, 0]);
  expect(proxy.injected).toHaveLength(11);
  expect(notPassed(results)).toEqual([]);
  expect(results.filter((r) => r.name !== 'traffic' && !ISTIO_CHECKS.has(r.name))).toHaveLength(9);
  type Beat = { verifying: string; retrying?: string };
  const retries = (beats as Beat[]).filter((b) => b.retrying);
  expect(retries.map((b) => b.retrying)).toEqual(
    expect.arrayContaining([
      expect.stringContaining('503'),
      expect.stringMatching(/socket hang up|ECONNRESET/),
      expect.stringContaining('429'),
      expect.stringMatching(/abort/i),
    ]),
  );
  expect(retries[0].verifying).toBe('cacerts (cluster1)');
  expect(retries.some((b) => b.verifying === 'remote-secret (cluster2)')).toBe(true);
});

test('an API server that keeps answering 503 makes verify throw, never a failed check', async () => {
  proxy.faults = [{ kind: '503', when: (req) => req.url!.includes('/secrets/cacerts'), times: Infinity }];
  const started = Date.now();
  const run = verify({ ...FAST, retryBudgetMs: 1_500 });
  await expect(run).rejects.toBeInstanceOf(ChecksUnavailableError);
  await expect(run).rejects.toThrow(
    /check cacerts \(cluster1\) got no definite answer in 1\.\d+s \(\d+ retries\), last error: 503 injected/,
  );
  expect(Date.now() - started).toBeLessThan(5_000);
  expect(proxy.injected.length).toBeGreaterThan(3);
});

test('a cancelled verification stops at once, with the cancellation as its error', async () => {
  proxy.faults = [{ kind: '503', when: () => true, times: Infinity }];
  const cancel = new AbortController();
  setTimeout(() => cancel.abort(new Error('activity cancelled')), 300);
  const started = Date.now();
  await expect(verify({ ...FAST, signal: cancel.signal })).rejects.toThrow('activity cancelled');
  expect(Date.now() - started).toBeLessThan(2_000);
});

test('connection refused past the budget (the API server is gone) also throws', async () => {
  const gone = { ...accessTo.cluster1, kubeconfig: proxiedKubeconfig(locals.cluster1, 'https://127.0.0.1:1', 'gone') };
  const to = (c: string) => (c === 'cluster1' ? gone : accessTo[c]);
  const run = verifyMesh(spec, to, noTraffic, heartbeat, { ...FAST, retryBudgetMs: 800 });
  await expect(run).rejects.toThrow(/cacerts \(cluster1\) got no definite answer.*ECONNREFUSED/);
});

test('a missing cacerts fails definitively (404), without retries', async () => {
  await core('cluster2').deleteNamespacedSecret({ name: 'cacerts', namespace: ISTIO_NAMESPACE });
  try {
    const results = await verify();
    expect(byName(results, 'cacerts', 'cluster2')).toEqual({
      code: 'MF0101',
      name: 'cacerts',
      cluster: 'cluster2',
      status: 'failed',
      detail: 'istio-system/cacerts does not exist (404 secrets "cacerts" not found)',
      hint: expect.stringContaining('re-run `meshflow up`'),
    });
    expect(byName(results, 'same-root')?.status).toBe('failed');
    expect(notPassed(results).map((r) => r.name)).toEqual(['cacerts', 'same-root']);
    expect(beats.filter((b) => (b as { retrying?: string }).retrying)).toEqual([]);
  } finally {
    await core('cluster2').createNamespacedSecret({
      namespace: ISTIO_NAMESPACE,
      body: { metadata: { name: 'cacerts' }, data: cacerts },
    });
  }
});

/** Grants cluster1's reader `rules` in `namespace` (or cluster-wide), runs `run`, then removes the grant. */
async function withGrant(rules: k8s.V1PolicyRule[], namespace: string | undefined, run: () => Promise<void>) {
  const api = rbac('cluster1');
  const name = 'too-much';
  const roleRef = { apiGroup: 'rbac.authorization.k8s.io', kind: namespace ? 'Role' : 'ClusterRole', name };
  if (namespace) {
    await api.createNamespacedRole({ namespace, body: { metadata: { name }, rules } });
    await api.createNamespacedRoleBinding({
      namespace,
      body: { metadata: { name }, roleRef, subjects: [readerSubject] },
    });
  } else {
    await api.createClusterRole({ body: { metadata: { name }, rules } });
    await api.createClusterRoleBinding({ body: { metadata: { name }, roleRef, subjects: [readerSubject] } });
  }
  try {
    await run();
  } finally {
    if (namespace) {
      await api.deleteNamespacedRoleBinding({ name, namespace });
      await api.deleteNamespacedRole({ name, namespace });
    } else {
      await api.deleteClusterRoleBinding({ name });
      await api.deleteClusterRole({ name });
    }
  }
}

/** The reader token of cluster1, as cluster2's remote secret holds it. */
async function readerKubeconfig(): Promise<k8s.KubeConfig> {
  const name = remoteSecretName('cluster1');
  const secret = await core('cluster2').readNamespacedSecret({ name, namespace: ISTIO_NAMESPACE });
  const kc = new k8s.KubeConfig();
  kc.loadFromString(Buffer.from(secret.data!.cluster1, 'base64').toString());
  return kc;
}
const readerAuth = async () => (await readerKubeconfig()).makeApiClient(k8s.AuthorizationV1Api);

async function expectReaderFailure(detail: string, hint: RegExp): Promise<void> {
  const results = await verify();
  expect(notPassed(results)).toEqual([
    {
      code: 'MF0301',
      name: 'remote-secret',
      cluster: 'cluster2',
      status: 'failed',
      detail,
      hint: expect.stringMatching(hint),
    },
  ]);
}

test('delete secrets granted in istio-system fails remote-secret, naming namespace, verb and resource', async () => {
  await withGrant([{ apiGroups: [''], resources: ['secrets'], verbs: ['delete'] }], ISTIO_NAMESPACE, () =>
    expectReaderFailure(
      'istio-remote-secret-cluster1 may delete secrets in namespace istio-system of cluster1',
      /RoleBindings in istio-system of istio-system\/istio-reader-service-account in cluster1/,
    ),
  );
  expect(notPassed(await verify())).toEqual([]);
});

test('impersonating service accounts in another namespace, and users cluster-wide, fail remote-secret', async () => {
  await core('cluster1').createNamespace({ body: { metadata: { name: 'payments' } } });
  await withGrant([{ apiGroups: [''], resources: ['serviceaccounts'], verbs: ['impersonate'] }], 'payments', () =>
    expectReaderFailure(
      'istio-remote-secret-cluster1 may impersonate serviceaccounts in namespace payments of cluster1',
      /RoleBindings in payments/,
    ),
  );
  await withGrant([{ apiGroups: [''], resources: ['users', 'groups'], verbs: ['impersonate'] }], undefined, () =>
    expectReaderFailure(
      'istio-remote-secret-cluster1 may impersonate users, impersonate groups in cluster1',
      /ClusterRoleBindings of/,
    ),
  );
});

test('escalate or bind on roles, and a wildcard rule, fail remote-secret', async () => {
  const RBAC = 'rbac.authorization.k8s.io';
  await withGrant([{ apiGroups: [RBAC], resources: ['roles'], verbs: ['escalate'] }], ISTIO_NAMESPACE, () =>
    expectReaderFailure(
      'istio-remote-secret-cluster1 may escalate roles in namespace istio-system of cluster1',
      /RoleBindings in istio-system/,
    ),
  );
  await withGrant([{ apiGroups: [RBAC], resources: ['clusterroles'], verbs: ['bind', 'escalate'] }], undefined, () =>
    expectReaderFailure(
      'istio-remote-secret-cluster1 may escalate clusterroles, bind clusterroles in cluster1',
      /ClusterRoleBindings/,
    ),
  );
  // A cluster-wide grant is named once, not once per namespace; a wildcard counts.
  await withGrant([{ apiGroups: ['apps'], resources: ['*'], verbs: ['deletecollection'] }], undefined, () =>
    expectReaderFailure(
      'istio-remote-secret-cluster1 may deletecollection deployments in cluster1',
      /ClusterRoleBindings/,
    ),
  );
});

test('a rules review with an evaluation error falls back to access reviews in that namespace', async () => {
  const api = rbac('cluster1');
  const ns = 'fallback';
  await core('cluster1').createNamespace({ body: { metadata: { name: ns } } });
  // A binding to a Role that does not exist: the rules review reports an evaluation error here.
  await api.createNamespacedRoleBinding({
    namespace: ns,
    body: {
      metadata: { name: 'dangling' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'missing' },
      subjects: [readerSubject],
    },
  });
  await withGrant([{ apiGroups: [''], resources: ['pods'], verbs: ['delete', 'create'] }], ns, async () => {
    const rights = await readerRights(await readerAuth(), core('cluster1'), (fn) => fn());
    expect(rights.fallback).toEqual([ns]);
    expect(rights.cluster).toEqual([]);
    expect([...rights.namespaces]).toEqual([
      [
        ns,
        [
          { verb: 'create', group: '', resource: 'pods' },
          { verb: 'delete', group: '', resource: 'pods' },
        ],
      ],
    ]);
    await expectReaderFailure(
      `istio-remote-secret-cluster1 may create pods, delete pods in namespace ${ns} of cluster1`,
      /RoleBindings in fallback/,
    );
  });
  await api.deleteNamespacedRoleBinding({ name: 'dangling', namespace: ns });
});

test('cost of the namespaced review: one rules review per namespace', async () => {
  const extra = 300;
  const api = core('cluster1');
  for (let i = 0; i < extra; i += 20) {
    const batch = Array.from({ length: 20 }, (_, j) => `tenant-${i + j}`);
    await Promise.all(batch.map((name) => api.createNamespace({ body: { metadata: { name } } })));
  }
  const namespaces = (await api.listNamespace()).items.length;
  // The remote secret points at the proxy; measure on the API server itself.
  const reader = await readerKubeconfig();
  reader.clusters[0] = { ...reader.clusters[0], server: locals.cluster1.server };
  const started = Date.now();
  const rights = await reviewReader(reader, kubeOf('cluster1'));
  const ms = Date.now() - started;
  expect(rights).toMatchObject({ cluster: [], namespaces: new Map(), reviewed: namespaces, fallback: [] });
  // One access review per forbidden permission at cluster scope, one namespace list, one rules review per namespace.
  expect(rights.requests).toBe(37 + 1 + namespaces);
  const whole = Date.now();
  expect(notPassed(await verify())).toEqual([]);
  console.log(
    `reader review of ${namespaces} namespaces: ${rights.requests} requests in ${ms} ms; ` +
      `whole verify (2 pairs, cluster1 and its reader through the proxy) ${Date.now() - whole} ms`,
  );
});

test('the budget is for errors in a row: a long review with errors now and then keeps going', async () => {
  let clean = Date.now();
  await verify();
  clean = Date.now() - clean;
  // A budget a quarter of what the whole verification takes; every tenth rules review is reset.
  const budget = Math.max(100, Math.floor(clean / 4));
  let n = 0;
  const everyTenth = (req: http.IncomingMessage) => req.url!.includes('selfsubjectrulesreviews') && n++ % 10 === 0;
  proxy.faults = [{ kind: 'reset', when: everyTenth, times: Infinity }];
  const started = Date.now();
  const results = await verify({ ...FAST, retryBudgetMs: budget, initialBackoffMs: 20 });
  expect(Date.now() - started).toBeGreaterThan(budget);
  expect(proxy.injected.length).toBeGreaterThan(10);
  expect(notPassed(results)).toEqual([]);
});
