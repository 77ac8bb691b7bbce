// End to end on the Temporal dev server and local clusters: the real workflow and activities
// (istioctl, API servers) bring an example mesh to ready with every control-plane check passing,
// and teardown leaves no cluster, CA file or process behind and no secret in history. The cases
// are split over two test files so that Jest runs them side by side.
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { meshStatus, startMesh, teardownMesh, verifyMesh } from '../../src/client';
import { type MeshWorker, createWorker } from '../../src/worker';
import { appPlacement, buildPlan, linkPairs } from '../../src/plan/plan';
import { parseDuration } from '../../src/spec/duration';
import { parseMeshSpec } from '../../src/spec/load';
import { freePort, sleep } from '../../src/util/net';
import { stopDaemon, supervisedPid } from '../../src/util/daemon';
import { LocalClusters } from '../../src/local/clusters';
import { startSimulatedDataPlane } from '../../src/sim/start';
import { EXEC_DOUBLE_ONLY_OWN } from '../../src/sim/exec-double';
import { ensureClusterCa } from '../../src/istio/trust';
import { probeServiceAccount } from '../../src/checks/trust-chain';
import { spiffeId } from '../../src/pki/chain';
import { istioBuildOf } from '../../src/istio/version';
import { istiodEnv } from '../../src/activities/control-plane';
import type { MeshSpec } from '../../src/spec/schema';
import type { MeshStatus } from '../../src/workflows/types';
import { scratchDir, testLocalTools, tool } from './env';
import { historyPayloadText, recordHistory } from './histories';
import { realDeps, waitPhase as waitForPhase } from './mesh';
import { devServer } from './temporal';

let env: TestWorkflowEnvironment;
let worker: MeshWorker;
let running: Promise<void>;
let state: string;

let onFailure: Array<() => Promise<void>> = [];

const waitPhase = (mesh: string, phases: string[], timeoutMs = 150_000): Promise<MeshStatus> =>
  waitForPhase(env.client, mesh, phases, timeoutMs, 500);

/** A root CA of the user's own, made with openssl (RSA, PKCS#1 key as `openssl genrsa -traditional` writes it). */
async function userRoot(): Promise<{ certFile: string; keyFile: string }> {
  const dir = scratchDir('user-root');
  await execa('openssl', ['genrsa', '-traditional', '-out', 'root-key.pem', '2048'], { cwd: dir });
  await execa(
    'openssl',
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'root-key.pem',
      '-out',
      'root-cert.pem',
      '-days',
      '365',
      '-subj',
      '/O=Acme/CN=Acme Root CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    { cwd: dir },
  );
  return { certFile: path.join(dir, 'root-cert.pem'), keyFile: path.join(dir, 'root-key.pem') };
}

const kubeOf = (local: LocalClusters, name: string) => {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(local.get(name)!.kubeconfig);
  return kc;
};

type Failed = Array<{ name: string; cluster?: string; detail?: string; hint?: string }>;

/** Runs `meshflow verify` until exactly these checks ("name" or "name/cluster") fail; returns them. */
async function untilFailing(mesh: string, want: string[], timeoutMs = 60_000): Promise<Failed> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const failed = (await verifyMesh(env.client, mesh)).filter((c) => c.status === 'failed');
    const keys = failed.map((c) => (c.cluster ? `${c.name}/${c.cluster}` : c.name)).sort();
    if (JSON.stringify(keys) === JSON.stringify([...want].sort()) || Date.now() > deadline) {
      expect(keys).toEqual([...want].sort());
      return failed;
    }
    await sleep(1000);
  }
}

const jsonPatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch);

/**
 * `meshflow verify` on a mesh broken by hand, one break at a time: each is found by the check
 * that owns it, with its cause and fix, and passes again once repaired. The Istio checks see
 * what istiod, running, made of each break.
 */
async function breakAndVerify(mesh: string, local: LocalClusters): Promise<void> {
  const c1 = kubeOf(local, `${mesh}-cluster1`).makeApiClient(k8s.CoreV1Api);
  const c2 = kubeOf(local, `${mesh}-cluster2`).makeApiClient(k8s.CoreV1Api);
  const networkLabel = (network: string) =>
    c2.patchNamespace(
      {
        name: 'istio-system',
        body: [{ op: 'replace', path: '/metadata/labels/topology.istio.io~1network', value: network }],
      },
      jsonPatch,
    );

  // 0. istiod killed: its supervisor starts it again, and Istio's checks ride out the gap.
  const dir1 = path.dirname(local.get(`${mesh}-cluster1`)!.kubeconfig);
  const killed = supervisedPid(path.join(dir1, 'istiod.pid'), dir1)!;
  process.kill(killed, 'SIGKILL');
  let failed = await untilFailing(mesh, []);
  expect(supervisedPid(path.join(dir1, 'istiod.pid'), dir1)).toEqual(expect.any(Number));
  expect(supervisedPid(path.join(dir1, 'istiod.pid'), dir1)).not.toBe(killed);

  // 0a. kwok, cluster1's kubelet here, killed: its supervisor starts it again, and the checks that go
  // through the kubelet (port-forwards to istiod, the traffic check's exec) retry rather than fail.
  const kubelet = supervisedPid(path.join(dir1, 'kwok.pid'), dir1)!;
  process.kill(kubelet, 'SIGKILL');
  await untilFailing(mesh, []);
  expect(supervisedPid(path.join(dir1, 'kwok.pid'), dir1)).toEqual(expect.any(Number));
  expect(supervisedPid(path.join(dir1, 'kwok.pid'), dir1)).not.toBe(kubelet);

  // 0b. The port-forward to cluster1's istiod pod leads to a closed port (kwok, standing in for the
  // kubelet, dials it as a kubelet dials a port in the pod): the three checks that ask istiod through
  // it (its debug and xDS ports, its CA) fail with what the kubelet said, and nothing else does.
  const custom1 = kubeOf(local, `${mesh}-cluster1`).makeApiClient(k8s.CustomObjectsApi);
  const forwards = { group: 'kwok.x-k8s.io', version: 'v1alpha1', plural: 'portforwards', namespace: 'istio-system' };
  type Forward = { metadata: { name: string }; spec: { forwards: Array<{ ports: number[]; target: object }> } };
  const [forward] = ((await custom1.listNamespacedCustomObject(forwards)) as { items: Forward[] }).items;
  const retarget = (targets: object[]) =>
    custom1.patchNamespacedCustomObject(
      {
        ...forwards,
        name: forward.metadata.name,
        body: targets.map((t, i) => ({ op: 'replace', path: `/spec/forwards/${i}/target`, value: t })),
      },
      jsonPatch,
    );
  const closed = { address: '127.0.0.1', port: await freePort() };
  await retarget(forward.spec.forwards.map(() => closed));
  failed = await untilFailing(mesh, ['discovery/cluster1', 'cross-network-endpoints/cluster1', 'trust-chain/cluster1']);
  for (const check of failed) {
    expect(check).toMatchObject({
      detail: expect.stringContaining(
        `istiod of cluster1 could not be reached: port-forward to istio-system/${forward.metadata.name} port `,
      ),
      hint: expect.stringContaining('pods/portforward'),
      via: expect.stringContaining(`port-forward to istio-system/${forward.metadata.name}`),
    });
    expect(check.detail).toContain(`127.0.0.1:${closed.port}`);
  }
  await retarget(forward.spec.forwards.map((f) => f.target));
  await untilFailing(mesh, []);

  // 0c. The exec test double in cluster1's client pod answers from its own cluster only (as a mesh
  // whose path across clusters is broken would): the traffic check of cluster1 fails, naming cluster2.
  const onlyOwn = (on: boolean) =>
    on ? fs.writeFileSync(path.join(dir1, EXEC_DOUBLE_ONLY_OWN), '') : fs.rmSync(path.join(dir1, EXEC_DOUBLE_ONLY_OWN));
  onlyOwn(true);
  failed = await untilFailing(mesh, ['traffic/cluster1']);
  expect(failed[0]).toMatchObject({
    detail: expect.stringMatching(/^cluster2 never answered; \d+ requests from cluster1 .*: cluster1 \d+, cluster2 0/),
    hint: expect.stringContaining('east-west gateway'),
  });
  onlyOwn(false);
  await untilFailing(mesh, []);

  // 1. A wrong network label on istio-system. Pods injected before keep their network, so istiod
  // still routes them right; the label check catches what the next pods would get.
  await networkLabel('network1');
  failed = await untilFailing(mesh, ['network-label/cluster2']);
  expect(failed[0]).toMatchObject({
    detail: expect.stringContaining('want network2'),
    hint: expect.stringContaining('kubectl label ns istio-system topology.istio.io/network=network2'),
  });
  await networkLabel('network2');
  await untilFailing(mesh, []);

  // 1b. A wrong network label on cluster2's east-west gateway: istiod takes it for network1's, and
  // network2 has no gateway left for cluster1's proxies. Only Istio's own answer shows this.
  const gatewayNetwork = (network: string) =>
    c2.patchNamespacedService(
      {
        name: 'istio-eastwestgateway',
        namespace: 'istio-system',
        body: [{ op: 'replace', path: '/metadata/labels/topology.istio.io~1network', value: network }],
      },
      jsonPatch,
    );
  await gatewayNetwork('network1');
  failed = await untilFailing(mesh, ['cross-network-endpoints/cluster1']);
  expect(failed.find((c) => c.cluster === 'cluster1')).toMatchObject({
    detail: expect.stringContaining('no gateway of network2'),
    hint: expect.stringContaining('topology.istio.io/network'),
  });
  await gatewayNetwork('network2');
  await untilFailing(mesh, []);

  // 2. A remote secret for the wrong cluster: istiod of cluster1 reads cluster2 as "cluster9".
  const remote = await c1.readNamespacedSecret({ name: 'istio-remote-secret-cluster2', namespace: 'istio-system' });
  const wrong = structuredClone(remote);
  wrong.metadata!.annotations!['networking.istio.io/cluster'] = 'cluster9';
  wrong.data = { cluster9: remote.data!.cluster2 };
  await c1.replaceNamespacedSecret({ name: remote.metadata!.name!, namespace: 'istio-system', body: wrong });
  failed = await untilFailing(mesh, ['remote-secret/cluster1', 'discovery/cluster1']);
  expect(failed.find((c) => c.name === 'discovery')).toMatchObject({
    detail: expect.stringContaining('does not read cluster2'),
    hint: expect.stringContaining('remote secrets'),
  });
  const fixed = await c1.readNamespacedSecret({ name: remote.metadata!.name!, namespace: 'istio-system' });
  fixed.metadata!.annotations!['networking.istio.io/cluster'] = 'cluster2';
  fixed.data = remote.data;
  await c1.replaceNamespacedSecret({ name: remote.metadata!.name!, namespace: 'istio-system', body: fixed });
  await untilFailing(mesh, []);

  // 3. An east-west gateway with no address (its load balancer gone): network2 is out of reach.
  const dir2 = path.dirname(local.get(`${mesh}-cluster2`)!.kubeconfig);
  await stopDaemon(path.join(dir2, 'simulated-data-plane.pid'), dir2);
  const gateway = await c2.readNamespacedServiceStatus({ name: 'istio-eastwestgateway', namespace: 'istio-system' });
  const address = gateway.status!.loadBalancer!.ingress!;
  const lbStatus = (ingress: k8s.V1LoadBalancerIngress[] | null) =>
    c2.patchNamespacedServiceStatus(
      {
        name: 'istio-eastwestgateway',
        namespace: 'istio-system',
        body: [{ op: 'replace', path: '/status/loadBalancer', value: ingress ? { ingress } : {} }],
      },
      jsonPatch,
    );
  await lbStatus(null);
  // The simulated data plane also answers cluster2's exec test double: stopped, its curl cannot answer.
  failed = await untilFailing(mesh, [
    'eastwest-address/cluster2',
    'cross-network-endpoints/cluster1',
    'traffic/cluster2',
  ]);
  expect(failed.find((c) => c.name === 'cross-network-endpoints')?.detail).toContain('no gateway of network2');
  expect(failed.find((c) => c.name === 'traffic')?.detail).toContain('the simulated data plane does not answer');
  await lbStatus(address);
  startSimulatedDataPlane(local.get(`${mesh}-cluster2`)!);
  await untilFailing(mesh, []);

  // 3b. cluster2's istiod restarted on cacerts of another root (as after a rotation gone wrong): its
  // CA signs, but nothing it signs, its own serving certificate first, verifies to the mesh root.
  const caDir = path.join(dir2, 'istiod', 'cacerts');
  const files = ['ca-cert.pem', 'ca-key.pem', 'root-cert.pem', 'cert-chain.pem'] as const;
  const original = Object.fromEntries(files.map((f) => [f, fs.readFileSync(path.join(caDir, f), 'utf8')]));
  const restartIstiod2 = (cacerts: Record<string, string>) => {
    for (const f of files) fs.writeFileSync(path.join(caDir, f), cacerts[f], { mode: 0o600 });
    process.kill(supervisedPid(path.join(dir2, 'istiod.pid'), dir2)!, 'SIGKILL');
  };
  const strangerStore = new Map<string, string>();
  const strangerEntries = {
    get: async (name: string) => strangerStore.get(name),
    putIfAbsent: async (entries: Record<string, string>) => {
      for (const [k, v] of Object.entries(entries)) if (!strangerStore.has(k)) strangerStore.set(k, v);
      return Object.fromEntries(Object.keys(entries).map((k) => [k, strangerStore.get(k)!]));
    },
    list: async () => [...strangerStore.keys()],
    remove: async (names: string[]) => void names.forEach((n) => strangerStore.delete(n)),
  };
  restartIstiod2({ ...(await ensureClusterCa(strangerEntries, 'cluster2', { keyAlgorithm: 'ecdsa-p256' })) });
  failed = await untilFailing(mesh, ['trust-chain/cluster2']);
  expect(failed[0]).toMatchObject({
    detail: expect.stringMatching(
      /^istiod of cluster2 .* serves a certificate that does not verify to the mesh root: /,
    ),
    hint: expect.stringContaining("restore cluster2's cacerts"),
  });
  restartIstiod2(original);
  await untilFailing(mesh, []);

  // 4. Mismatched roots, and a reader that may delete secrets (its remote secret is no longer reader-only).
  const stranger = (await userRoot()).certFile;
  await c1.patchNamespacedSecret(
    {
      name: 'cacerts',
      namespace: 'istio-system',
      body: [{ op: 'replace', path: '/data/root-cert.pem', value: fs.readFileSync(stranger).toString('base64') }],
    },
    jsonPatch,
  );
  const rbac = kubeOf(local, `${mesh}-cluster1`).makeApiClient(k8s.RbacAuthorizationV1Api);
  await rbac.createClusterRole({
    body: { metadata: { name: 'too-much' }, rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['delete'] }] },
  });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: 'too-much' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'too-much' },
      subjects: [{ kind: 'ServiceAccount', name: 'istio-reader-service-account', namespace: 'istio-system' }],
    },
  });
  failed = await untilFailing(mesh, ['same-root', 'remote-secret/cluster2']);
  expect(failed).toEqual([
    expect.objectContaining({ name: 'same-root', hint: expect.stringContaining('UNKNOWN_CA') }),
    expect.objectContaining({
      name: 'remote-secret',
      cluster: 'cluster2',
      detail: 'istio-remote-secret-cluster1 may delete secrets in cluster1',
      hint: expect.stringContaining('istio-reader-service-account'),
    }),
  ]);
  expect(failed[0].detail).toContain('cluster1');
  const status = await meshStatus(env.client, mesh);
  expect(status.checks.filter((c) => c.status === 'failed')).toEqual(failed);
  expect(status.phase).toBe('ready'); // a failed check is reported, it does not tear the mesh down
}

const SECRET_MARKER = 'user-secret-value-4f1c9';

/** Online Boutique split over cluster1 and cluster3, and the user's own files (one with a Secret) in cluster2. */
function boutiqueAndOwnFiles(spec: MeshSpec): void {
  const secretFile = path.join(scratchDir('own-files'), 'secret.yaml');
  // A namespaced object and a cluster-scoped one, neither naming a namespace.
  fs.writeFileSync(
    secretFile,
    `apiVersion: v1\nkind: Secret\nmetadata: { name: api-key }\nstringData: { key: ${SECRET_MARKER} }\n---\n` +
      'apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: { name: greeter-reader }\nrules: [{ apiGroups: [""], resources: [configmaps], verbs: [get] }]\n',
  );
  spec.app = {
    sample: 'online-boutique',
    placement: {
      cluster1: ['frontend', 'productcatalogservice', 'recommendationservice', 'cartservice'],
      cluster3: [
        'emailservice',
        'checkoutservice',
        'paymentservice',
        'currencyservice',
        'shippingservice',
        'adservice',
      ],
    },
    manifests: [
      {
        file: path.join(__dirname, '..', '..', 'examples', 'apps', 'greeter.yaml'),
        clusters: ['cluster2'],
        namespace: 'greeter',
      },
      // "default" exists and is not meshflow's: it must be used, never owned or deleted.
      { file: secretFile, clusters: ['cluster2'], namespace: 'default' },
    ],
  };
}

async function expectAppsPlaced(mesh: string, local: LocalClusters, ready: MeshStatus): Promise<void> {
  const deployments = async (cluster: string, namespace: string) =>
    (
      await kubeOf(local, `${mesh}-${cluster}`).makeApiClient(k8s.AppsV1Api).listNamespacedDeployment({ namespace })
    ).items
      .map((d) => d.metadata!.name!)
      .sort();
  expect(await deployments('cluster1', 'boutique')).toEqual([
    'cartservice',
    'frontend',
    'productcatalogservice',
    'recommendationservice',
    'redis-cart',
  ]);
  expect(await deployments('cluster3', 'boutique')).toEqual([
    'adservice',
    'checkoutservice',
    'currencyservice',
    'emailservice',
    'paymentservice',
    'shippingservice',
  ]);
  expect(await deployments('cluster2', 'greeter')).toEqual(['greeter']);
  const c2 = kubeOf(local, `${mesh}-cluster2`).makeApiClient(k8s.CoreV1Api);
  expect((await c2.readNamespace({ name: 'greeter' })).metadata?.labels).toMatchObject({
    'istio-injection': 'enabled',
    'meshflow.dev/mesh': mesh,
  });
  expect(
    (await c2.readNamespacedSecret({ name: 'api-key', namespace: 'default' })).metadata?.labels?.['meshflow.dev/mesh'],
  ).toBe(mesh);
  expect((await c2.readNamespace({ name: 'default' })).metadata?.labels?.['meshflow.dev/mesh']).toBeUndefined();
  // What teardown will delete in cluster2: the user's objects, never the namespace meshflow did not make.
  const refs = ready.ledger
    .filter((l) => l.step === 'deploy-app:cluster2')
    .flatMap((l) => (l.resource.type === 'objects' ? l.resource.objects : []));
  expect(refs).toContainEqual({ apiVersion: 'v1', kind: 'Secret', namespace: 'default', name: 'api-key' });
  expect(refs.find((r) => r.kind === 'ClusterRole')).toEqual({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    name: 'greeter-reader',
  });
  expect(refs.filter((r) => r.kind === 'Namespace').map((r) => r.name)).toEqual(['greeter']);
  expect(ready.steps.find((st) => st.id === 'deploy-app:cluster2')?.outputs?.untouchedNamespaces).toBe('default');
}

export interface CaseOptions {
  /** Sign with a root CA of the user's own. */
  ownRoot?: boolean;
  /** Break the ready mesh by hand and expect `verify` to find each break. */
  breakAndVerify?: boolean;
  /** Online Boutique split over two clusters and the user's own files in the third. */
  apps?: boolean;
  /** Istio's observability addons on every primary. */
  addons?: boolean;
  /** The spec's istio.version, when not the default: the istiod meshflow runs must be of its line's build. */
  istioVersion?: string;
  /** The same mesh with Istio's ambient data plane (istio.dataPlane: ambient). */
  ambient?: boolean;
  /** Break the ready ambient mesh by hand (east-west Gateway, network label, multi-network flag, namespace, waypoint). */
  ambientBreaks?: boolean;
  /** A waypoint for the app's namespace (app.waypoint). */
  waypoint?: string;
}

/** What an ambient mesh puts in each cluster: the ambient profile, the Gateway API, an east-west Gateway, the sample in ambient. */
async function expectAmbient(mesh: string, local: LocalClusters, spec: MeshSpec): Promise<void> {
  for (const c of spec.clusters) {
    const kc = kubeOf(local, `${mesh}-${c.name}`);
    const daemonSets = await kc.makeApiClient(k8s.AppsV1Api).listNamespacedDaemonSet({ namespace: 'istio-system' });
    expect(daemonSets.items.map((d) => d.metadata?.name).sort()).toEqual(['istio-cni-node', 'ztunnel']);
    const istiod = await kc
      .makeApiClient(k8s.AppsV1Api)
      .readNamespacedDeployment({ name: 'istiod', namespace: 'istio-system' });
    const env = new Map(istiod.spec?.template.spec?.containers[0].env?.map((e) => [e.name, e.value]));
    expect([env.get('PILOT_ENABLE_AMBIENT'), env.get('AMBIENT_ENABLE_MULTI_NETWORK')]).toEqual(['true', 'true']);
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const gw = (await custom.getNamespacedCustomObject({
      group: 'gateway.networking.k8s.io',
      version: 'v1',
      namespace: 'istio-system',
      plural: 'gateways',
      name: 'istio-eastwest',
    })) as { metadata: { labels: Record<string, string> }; spec: { gatewayClassName: string; listeners: object[] } };
    expect(gw.metadata.labels['topology.istio.io/network']).toBe(c.network);
    expect(gw.spec.gatewayClassName).toBe('istio-east-west');
    expect(gw.spec.listeners).toEqual([expect.objectContaining({ port: 15008, protocol: 'HBONE' })]);
    // The app's namespace where the app runs (a cluster may run none of it).
    if (!appPlacement(spec)[c.name]?.length) continue;
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const ns = await core.readNamespace({ name: 'sample' });
    expect(ns.metadata?.labels).toMatchObject({ 'istio.io/dataplane-mode': 'ambient' });
    expect(ns.metadata?.labels?.['istio-injection']).toBeUndefined();
    const svc = await core.readNamespacedService({ name: 'helloworld', namespace: 'sample' });
    expect(svc.metadata?.labels?.['istio.io/global']).toBe('true');
    // A waypoint of the same name in every cluster, deployed by istiod, the namespace labelled to use it.
    const waypoint = spec.app.waypoint;
    if (waypoint) {
      expect(ns.metadata?.labels?.['istio.io/use-waypoint']).toBe(waypoint);
      const wp = (await custom.getNamespacedCustomObject({ ...GATEWAYS, namespace: 'sample', name: waypoint })) as {
        spec: { gatewayClassName: string };
      };
      expect(wp.spec.gatewayClassName).toBe('istio-waypoint');
      const deployment = await kc
        .makeApiClient(k8s.AppsV1Api)
        .readNamespacedDeployment({ name: waypoint, namespace: 'sample' });
      expect(deployment.status?.availableReplicas).toBe(1);
    }
  }
}

const GATEWAYS = { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'gateways' };

/**
 * `meshflow verify` on an ambient mesh broken by hand: each break fails the checks that own it
 * (the Gateway's own check where the object is wrong, and istiod's answer to the ztunnels of the
 * other networks), and everything passes again once repaired.
 */
async function ambientBreakAndVerify(mesh: string, local: LocalClusters): Promise<void> {
  const gateways = { group: 'gateway.networking.k8s.io', version: 'v1', namespace: 'istio-system', plural: 'gateways' };
  const custom2 = kubeOf(local, `${mesh}-cluster2`).makeApiClient(k8s.CustomObjectsApi);
  const relabel = (network: string) =>
    custom2.patchNamespacedCustomObject(
      { ...gateways, name: 'istio-eastwest', body: { metadata: { labels: { 'topology.istio.io/network': network } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );

  // 1. cluster2's east-west Gateway labelled for a network that is not cluster2's.
  await relabel('network9');
  let failed = await untilFailing(mesh, ['eastwest-address/cluster2', 'ambient-workloads/cluster1']);
  expect(failed.find((c) => c.name === 'eastwest-address')?.detail).toContain('labelled for network network9');
  expect(failed.find((c) => c.name === 'ambient-workloads')?.detail).toMatch(
    /^as a ztunnel of cluster1 \(network1\), istiod of cluster1 answers: helloworld\.sample: no workload stands for the 1 endpoint\(s\) of network2/,
  );
  await relabel('network2');
  await untilFailing(mesh, []);

  // 2. cluster2's east-west Gateway deleted (istiod's Deployment and Service of it go with it), then put back.
  const gw = await custom2.getNamespacedCustomObject({ ...gateways, name: 'istio-eastwest' });
  await custom2.deleteNamespacedCustomObject({ ...gateways, name: 'istio-eastwest' });
  failed = await untilFailing(mesh, ['eastwest-address/cluster2', 'ambient-workloads/cluster1']);
  expect(failed.find((c) => c.name === 'eastwest-address')?.detail).toContain('does not exist');
  const { metadata, spec } = gw as { metadata: k8s.V1ObjectMeta; spec: object };
  await custom2.createNamespacedCustomObject({
    ...gateways,
    body: {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: metadata.name, labels: metadata.labels },
      spec,
    },
  });
  await untilFailing(mesh, []);

  // 3. cluster1's istiod started without AMBIENT_ENABLE_MULTI_NETWORK: it stops folding network2's
  // endpoints into its east-west gateway, so its ztunnels have no way there.
  const restartIstiod1 = async (multiNetwork: string) => {
    const name = `${mesh}-cluster1`;
    const dir = path.dirname(local.get(name)!.kubeconfig);
    const d = await kubeOf(local, name)
      .makeApiClient(k8s.AppsV1Api)
      .readNamespacedDeployment({ name: 'istiod', namespace: 'istio-system' });
    const env = { ...istiodEnv([{ ...d, kind: 'Deployment' }]), AMBIENT_ENABLE_MULTI_NETWORK: multiNetwork };
    const caDir = path.join(dir, 'istiod', 'cacerts');
    const cacerts = Object.fromEntries(
      fs.readdirSync(caDir).map((f) => [f, fs.readFileSync(path.join(caDir, f), 'utf8')]),
    );
    const tools = new LocalClusters(state, testLocalTools());
    await tools.stopIstiod(name, undefined);
    await tools.startIstiod(name, { clusterId: 'cluster1', cacerts, env });
  };
  await restartIstiod1('false');
  failed = await untilFailing(mesh, ['ambient-workloads/cluster1']);
  expect(failed[0].hint).toContain('AMBIENT_ENABLE_MULTI_NETWORK=true');
  await restartIstiod1('true');
  await untilFailing(mesh, []);

  // 4. cluster2's sample namespace taken out of ambient mode: istio-cni (played by the simulated data
  // plane) releases its pods from ztunnel.
  const core2 = kubeOf(local, `${mesh}-cluster2`).makeApiClient(k8s.CoreV1Api);
  await core2.patchNamespace(
    { name: 'sample', body: [{ op: 'remove', path: '/metadata/labels/istio.io~1dataplane-mode' }] },
    jsonPatch,
  );
  failed = await untilFailing(mesh, ['ambient-capture/cluster2']);
  expect(failed[0].detail).toContain('namespace sample is not labelled istio.io/dataplane-mode=ambient');
  await core2.patchNamespace(
    { name: 'sample', body: [{ op: 'add', path: '/metadata/labels/istio.io~1dataplane-mode', value: 'ambient' }] },
    jsonPatch,
  );
  await untilFailing(mesh, []);

  // 5. cluster2's waypoint deleted: its Service has no waypoint in cluster2, where its clients resolve it.
  const waypoint = await custom2.getNamespacedCustomObject({ ...GATEWAYS, namespace: 'sample', name: 'waypoint' });
  await custom2.deleteNamespacedCustomObject({ ...GATEWAYS, namespace: 'sample', name: 'waypoint' });
  failed = await untilFailing(mesh, ['ambient-workloads/cluster2']);
  expect(failed[0].detail).toContain('helloworld.sample: no waypoint (the spec asks for waypoint)');
  expect(failed[0].hint).toContain('class istio-waypoint');
  const w = waypoint as { metadata: k8s.V1ObjectMeta; spec: object };
  await custom2.createNamespacedCustomObject({
    ...GATEWAYS,
    namespace: 'sample',
    body: { ...GATEWAY_KIND, metadata: { name: w.metadata.name, labels: w.metadata.labels }, spec: w.spec },
  });
  await untilFailing(mesh, []);
}

const GATEWAY_KIND = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway' };

/** Prometheus, Grafana, Jaeger and Kiali run on every primary, Kiali told its cluster and the others' addresses. */
async function expectAddons(mesh: string, local: LocalClusters, spec: MeshSpec, ready: MeshStatus): Promise<void> {
  for (const c of spec.clusters.filter((x) => x.role === 'primary')) {
    expect(ready.steps.find((st) => st.id === `addons:${c.name}`)?.state).toBe('done');
    const kc = kubeOf(local, `${mesh}-${c.name}`);
    for (const name of ['prometheus', 'grafana', 'jaeger', 'kiali']) {
      const d = await kc.makeApiClient(k8s.AppsV1Api).readNamespacedDeployment({ name, namespace: 'istio-system' });
      expect([name, d.status?.availableReplicas, d.metadata?.labels?.['meshflow.dev/mesh']]).toEqual([name, 1, mesh]);
    }
    const cm = await kc
      .makeApiClient(k8s.CoreV1Api)
      .readNamespacedConfigMap({ name: 'kiali', namespace: 'istio-system' });
    const config = cm.data!['config.yaml'];
    expect(config).toContain(`cluster_name: ${c.name}`);
    expect(config).toContain('internal_url: http://tracing.istio-system:16685/jaeger');
    expect(config).toContain('internal_url: http://grafana.istio-system:3000');
    expect(config).not.toContain('CHANGEME');
  }
}

/** Registers the dev server, a worker with the real activities, and one test per [example file, mesh name, options]. */
export function meshEndToEnd(cases: Array<[string, string, CaseOptions]>): void {
  beforeAll(async () => {
    env = await devServer();
    state = scratchDir('e2e');
    worker = await createWorker(env.nativeConnection, 'default', realDeps(state), 'e2e');
    running = worker.run();
  });

  afterEach(async () => {
    for (const cleanup of onFailure) await cleanup();
    onFailure = [];
  });

  afterAll(async () => {
    worker?.shutdown();
    await running;
    await env?.teardown();
  });

  test.each(cases)(
    '%s on local clusters reaches ready with every control-plane check passing, and down leaves nothing behind',
    async (example, mesh, options: CaseOptions) => {
      const spec = {
        ...parseMeshSpec(fs.readFileSync(path.join(__dirname, '..', '..', 'examples', example), 'utf8')),
        name: mesh,
      };
      if (options.ownRoot) spec.trust = { ...spec.trust, rootCa: await userRoot() };
      if (options.apps) boutiqueAndOwnFiles(spec);
      if (options.addons) spec.addons = ['prometheus', 'grafana', 'jaeger', 'kiali'];
      if (options.istioVersion) spec.istio = { ...spec.istio, version: options.istioVersion };
      if (options.ambient) spec.istio = { ...spec.istio, dataPlane: 'ambient' };
      if (options.waypoint) spec.app = { ...spec.app, waypoint: options.waypoint };
      const ambient = spec.istio.dataPlane === 'ambient';
      const handle = await startMesh(env.client, spec, 'e2e');
      // A failed assertion must not leave this mesh's clusters running into the next case.
      onFailure.push(async () => {
        await teardownMesh(env.client, mesh).catch(() => undefined);
        await handle.result().catch(() => undefined);
      });
      const ready = await waitPhase(mesh, ['ready', 'failed', 'deleted']);
      expect(ready.error).toBeUndefined();
      expect(ready.phase).toBe('ready');
      expect(ready.steps.every((s) => s.state === 'done')).toBe(true);
      const controlPlane = ready.checks.filter((c) => c.name !== 'traffic' && c.name !== 'ingress');
      expect(controlPlane.filter((c) => c.status !== 'passed')).toEqual([]);
      // Gateway checks exactly where the topology needs gateways: none on one flat network.
      const kinds = new Set(buildPlan(spec).steps.map((s) => s.kind));
      const gatewayChecks = [
        ...(kinds.has('eastwest-gateway') ? ['eastwest-address'] : []),
        ...(kinds.has('expose-services') ? ['cross-network-gateway'] : []),
      ];
      expect(new Set(controlPlane.map((c) => c.name))).toEqual(
        new Set([
          'cacerts',
          'same-root',
          'network-label',
          'remote-secret',
          'istiod-available',
          ...gatewayChecks,
          // What Istio itself says, from the istiod meshflow runs for each primary.
          'discovery',
          ...(ambient ? ['ambient-workloads', 'ambient-capture'] : ['cross-network-endpoints', 'injection']),
          'analyze',
          'trust-chain',
        ]),
      );
      // Asked over xDS, every cluster's istiod answer was compared, and every primary's discovery.
      const endpoints = ambient ? 'ambient-workloads' : 'cross-network-endpoints';
      expect(controlPlane.filter((c) => c.name === endpoints)).toHaveLength(spec.clusters.length);
      // Each reached the serving istiod as istioctl does: a port-forward to its pod through the API server.
      for (const c of controlPlane.filter((x) => x.name === 'discovery' || x.name === endpoints))
        expect(c.via).toMatch(/^port-forward to istio-system\/istiod-[a-z0-9]+-[a-z0-9]+ \(8080, 15010\)$/);
      // Every cluster's workloads get certificates that chain to the mesh root, a remote's from its primary.
      const chains = controlPlane.filter((c) => c.name === 'trust-chain');
      expect(chains.map((c) => c.cluster).sort()).toEqual(spec.clusters.map((c) => c.name).sort());
      // Its CA asked on its TLS port, as a workload's proxy asks it, through a port-forward to its pod.
      for (const c of chains)
        expect(c.via).toMatch(/^port-forward to istio-system\/istiod-[a-z0-9]+-[a-z0-9]+ \(15012\)$/);
      for (const c of spec.clusters) {
        const sa = probeServiceAccount(spec, c.name);
        expect(chains.find((x) => x.cluster === c.name)?.detail).toContain(
          `istiod of ${c.primary ?? c.name} signed ${spiffeId('cluster.local', sa.namespace, sa.name)} ` +
            `(token from ${c.name}); the chain verifies to the mesh root through "`,
        );
      }
      const primaries = spec.clusters.filter((c) => c.role === 'primary');
      expect(controlPlane.filter((c) => c.name === 'discovery')).toHaveLength(primaries.length);
      // Each primary's istiod answers on the debug address status gives, and reads every cluster it serves.
      for (const p of primaries) {
        const debug = ready.steps.find((st) => st.id === `control-plane:${p.name}`)?.outputs?.istiodDebug;
        expect(debug).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
        const clusterz = (await (await fetch(`${debug}/debug/clusterz`)).json()) as Array<{ id: string }>;
        expect(clusterz.map((c) => c.id).sort()).toEqual(
          spec.clusters
            .filter((c) => c.name === p.name || c.primary === p.name || (c.role === 'primary' && p.role === 'primary'))
            .map((c) => c.name)
            .sort(),
        );
      }
      expect(gatewayChecks.length > 0).toBe(new Set(spec.clusters.map((c) => c.network)).size > 1);
      // No container runs on local clusters. helloworld's requests go through exec to kwok, whose
      // test double answers and says so; other samples' and the ingress checks say they cannot run.
      const traffic = ready.checks.filter((c) => c.name === 'traffic' || c.name === 'ingress');
      expect(traffic.length).toBeGreaterThan(0);
      if (spec.app.sample === 'helloworld') {
        expect(traffic.map((c) => `${c.name} ${c.status}`)).toEqual(traffic.map(() => 'traffic passed'));
        for (const c of traffic) expect(c.detail).toContain("answered by meshflow's exec test double");
      } else expect(traffic.filter((c) => c.status !== 'not-supported')).toEqual([]);
      const local = new LocalClusters(state, { kubeApiserver: tool('kube-apiserver'), etcd: tool('etcd') });
      // Istio's release images at the spec's version, not the testing registry a source-built istioctl names.
      const primary = spec.clusters.find((c) => c.role === 'primary')!.name;
      const istiod = await kubeOf(local, `${mesh}-${primary}`)
        .makeApiClient(k8s.AppsV1Api)
        .readNamespacedDeployment({ name: 'istiod', namespace: 'istio-system' });
      // (Istio's ambient profile runs the distroless variant of the same release.)
      expect(istiod.spec?.template.spec?.containers[0].image).toBe(
        `docker.io/istio/pilot:${spec.istio.version}${ambient ? '-distroless' : ''}`,
      );
      // Each primary's istiod is the pilot-discovery of the Istio build of the spec's line, as it says itself.
      const build = istioBuildOf(spec.istio.version)!;
      for (const p of primaries) {
        const { monitoring } = await local.istiodPorts(`${mesh}-${p.name}`);
        const version = await (await fetch(`http://127.0.0.1:${monitoring}/version`)).text();
        expect(version.startsWith(`${build.stamp}-`)).toBe(true);
      }
      // Reader tokens: the API server's expiry for TTL + 1h, renewal planned at two thirds of that.
      for (const link of ready.steps.filter((st) => st.kind === 'link')) {
        const issued = Date.parse(link.startedAt!);
        const life = Date.parse(link.outputs!.tokenExpiresAt) - issued;
        expect(Math.abs(life - (parseDuration(spec.ttl)! + 3_600_000))).toBeLessThan(60_000);
        expect(Math.abs(Date.parse(link.outputs!.tokenRenewAt) - (issued + (life * 2) / 3))).toBeLessThan(60_000);
      }
      // Every ordered pair the topology needs has a working remote secret.
      expect(controlPlane.filter((c) => c.name === 'remote-secret')).toHaveLength(linkPairs(spec).length);

      const mine = local.list().filter((c) => c.name.startsWith(`${mesh}-`));
      expect(mine.map((c) => c.name).sort()).toEqual(spec.clusters.map((c) => `${mesh}-${c.name}`).sort());
      expect(new Set(mine.map((c) => c.index)).size).toBe(spec.clusters.length); // each its own load balancer pool
      const [source, target] = linkPairs(spec)[0];
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(local.get(`${mesh}-${target}`)!.kubeconfig);
      const secret = await kc
        .makeApiClient(k8s.CoreV1Api)
        .readNamespacedSecret({ name: `istio-remote-secret-${source}`, namespace: 'istio-system' });
      expect(secret.metadata?.annotations?.['networking.istio.io/cluster']).toBe(source);
      for (const remote of spec.clusters.filter((c) => c.role === 'remote')) {
        const rkc = new k8s.KubeConfig();
        rkc.loadFromFile(local.get(`${mesh}-${remote.name}`)!.kubeconfig);
        const ns = await rkc.makeApiClient(k8s.CoreV1Api).readNamespace({ name: 'istio-system' });
        expect(ns.metadata?.annotations?.['topology.istio.io/controlPlaneClusters']).toBe(remote.primary);
        // A remote runs no istiod of its own.
        const deployments = await rkc
          .makeApiClient(k8s.AppsV1Api)
          .listNamespacedDeployment({ namespace: 'istio-system' });
        expect(deployments.items.map((d) => d.metadata?.name)).not.toContain('istiod');
      }

      if (options.ownRoot) {
        const root = (
          await kubeOf(local, `${mesh}-${target}`)
            .makeApiClient(k8s.CoreV1Api)
            .readNamespacedSecret({ name: 'cacerts', namespace: 'istio-system' })
        ).data!['root-cert.pem'];
        expect(Buffer.from(root, 'base64').toString()).toContain(
          fs.readFileSync(spec.trust.rootCa!.certFile!, 'utf8').split('\n')[1],
        );
      }
      if (ambient) {
        await expectAmbient(mesh, local, spec);
        // Each cluster's ztunnels are told to reach every other network through its east-west Gateway.
        for (const c of spec.clusters) {
          const others = new Set(spec.clusters.filter((o) => o.network !== c.network).map((o) => o.network));
          const detail = controlPlane.find((x) => x.name === 'ambient-workloads' && x.cluster === c.name)?.detail;
          for (const n of others) expect(detail).toMatch(new RegExp(`${n} \\d+ via 198\\.18\\.\\d+\\.\\d+:15008`));
        }
      }
      if (options.breakAndVerify) await breakAndVerify(mesh, local);
      if (options.ambientBreaks) await ambientBreakAndVerify(mesh, local);
      if (options.apps) await expectAppsPlaced(mesh, local, ready);
      if (options.addons) await expectAddons(mesh, local, spec, ready);

      onFailure = [];
      await teardownMesh(env.client, mesh);
      const final = await handle.result();
      expect(final.phase).toBe('deleted');
      expect(final.leftBehind).toEqual([]);
      expect(final.ledger).toEqual([]);
      expect(local.list().filter((c) => c.name.startsWith(`${mesh}-`))).toEqual([]);
      // Nothing of the mesh stays in the state directory, not even an empty folder.
      expect(fs.existsSync(path.join(state, 'meshes', mesh))).toBe(false);
      // The user's root is theirs: read, never removed.
      if (spec.trust.rootCa)
        expect([fs.existsSync(spec.trust.rootCa.certFile!), fs.existsSync(spec.trust.rootCa.keyFile!)]).toEqual([
          true,
          true,
        ]);

      // Another Istio build changes no step of the workflow: its history would be the default's.
      // (ambient.yaml's history stands for ambient meshes: a flipped example would be a second copy.)
      if (!options.istioVersion && !options.ambient)
        await recordHistory(handle, `v2-e2e-${path.basename(example, '.yaml')}`);
      // Secrets never entered history: decode every payload and look for keys, tokens, kubeconfigs.
      const all = await historyPayloadText(handle);
      expect(all).toContain('"phase":"deleted"'); // the payloads were decoded
      expect(all).not.toMatch(/PRIVATE KEY/);
      expect(all).not.toMatch(/CERTIFICATE REQUEST/); // trust-chain's test CSR (and its key) stayed in the activity
      expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\./); // a JWT
      expect(all).not.toMatch(/client-key-data|certificate-authority-data|"token"/);
      expect(all).not.toContain(SECRET_MARKER); // the user's own Secret was read by the worker, not carried

      const leftover = fs
        .readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            return fs
              .readFileSync(`/proc/${p}/cmdline`, 'utf8')
              .includes(path.join(state, 'local', 'clusters', `${mesh}-`));
          } catch {
            return false;
          }
        });
      expect(
        leftover.map((p) => fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').slice(0, 2).join(' ')),
      ).toEqual([]);
    },
    300_000,
  );
}
