// Local clusters are real Kubernetes control planes: two of them, each its own API server with
// its own CA and data, serve namespaces, secrets, CRDs with server-side apply, TokenRequest and
// RBAC; real controllers roll out Deployments and delete namespaces, kwok's node runs the pods
// with IPs from the cluster's pod CIDR; the simulated data plane gives LoadBalancer Services
// addresses; clusters restart from their state and leave no process behind; clusters deleted
// at once stop together, outside the lock, without disturbing one being created.
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { COMPONENTS, LocalClusters, type LocalCluster, NODE_NAME, readyz } from '../src/local/clusters';
import { type SimulatedDataPlane, startSimulatedDataPlane } from '../src/sim/data-plane';
import { startSimulatedDataPlane as startSimulatedDataPlaneDaemon } from '../src/sim/start';
import { runningPid, startSupervisedDaemon, supervisedPid } from '../src/util/daemon';
import { withLock } from '../src/util/lock';
import { scratchDir, testLocalTools, until } from './helpers/env';
import { ephemeralPortRange, sleep } from '../src/util/net';

let state: string;
let clusters: LocalClusters;
let east: LocalCluster;
let west: LocalCluster;
let sim: SimulatedDataPlane;

function kubeConfig(c: LocalCluster): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(c.kubeconfig);
  return kc;
}

const core = (c: LocalCluster) => kubeConfig(c).makeApiClient(k8s.CoreV1Api);

async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(200);
  }
}

beforeAll(async () => {
  state = scratchDir('local');
  clusters = new LocalClusters(state, testLocalTools());
  [east, west] = await clusters.start(['east', 'west'], { podCidrs: { east: '10.61.0.0/16' } });
  sim = await startSimulatedDataPlane([east, west]);
});

afterAll(async () => {
  await sim?.stop();
  await clusters?.delete(['east', 'west']);
});

test('each cluster has its own API server, CA and admin kubeconfig', async () => {
  expect(east.port).not.toBe(west.port);
  expect(fs.readFileSync(east.pki.caCert, 'utf8')).not.toBe(fs.readFileSync(west.pki.caCert, 'utf8'));
  const version = await kubeConfig(east).makeApiClient(k8s.VersionApi).getCode();
  expect(version.gitVersion).toBe('v1.34.4');
  // east's CA does not vouch for west's server
  const crossed = { ...west, pki: { ...west.pki, caCert: east.pki.caCert } };
  expect(await readyz(crossed)).toBe(false);
});

test('a cluster made without waiting for its bootstrap objects (as create-cluster does) gets them soon', async () => {
  const [early] = await clusters.start(['early'], { untilBootstrapped: false });
  try {
    // Everything but the bootstrap hooks holds, and system:masters may act at once.
    await core(early).createNamespace({ body: { metadata: { name: 'first' } } });
    await eventually(async () => (await readyz(early)) || undefined);
    const rbac = kubeConfig(early).makeApiClient(k8s.RbacAuthorizationV1Api);
    expect((await rbac.readClusterRoleBinding({ name: 'system:basic-user' })).roleRef.name).toBe('system:basic-user');
    const scheduling = kubeConfig(early).makeApiClient(k8s.SchedulingV1Api);
    expect((await scheduling.readPriorityClass({ name: 'system-cluster-critical' })).value).toBeGreaterThan(0);
  } finally {
    await clusters.delete(['early']);
  }
});

test('server ports lie outside the range outgoing connections take their ports from', async () => {
  // An istiod once failed with EADDRINUSE: its port, chosen in the ephemeral range, was taken by
  // a client connection before it bound it. Ports of local servers are drawn from outside it.
  const [lo, hi] = ephemeralPortRange();
  const istiod = await clusters.istiodPorts('east');
  const ports = [east.port, west.port, ...Object.values(istiod)];
  for (const port of ports) expect(port >= lo && port <= hi).toBe(false);
  expect(new Set(ports).size).toBe(ports.length);
});

test('namespaces and secrets live in one cluster only', async () => {
  await core(east).createNamespace({ body: { metadata: { name: 'payments' } } });
  await core(east).createNamespacedSecret({
    namespace: 'payments',
    body: { metadata: { name: 'db' }, stringData: { password: 'hunter2' } },
  });
  const secret = await core(east).readNamespacedSecret({ name: 'db', namespace: 'payments' });
  expect(Buffer.from(secret.data!.password, 'base64').toString()).toBe('hunter2');
  await expect(core(west).readNamespace({ name: 'payments' })).rejects.toMatchObject({ code: 404 });
});

test('a CRD and a custom resource are applied with server-side apply', async () => {
  const objects = k8s.KubernetesObjectApi.makeApiClient(kubeConfig(west));
  const crd = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'widgets.example.meshflow.dev' },
    spec: {
      group: 'example.meshflow.dev',
      names: { kind: 'Widget', plural: 'widgets', singular: 'widget' },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } },
            },
          },
        },
      ],
    },
  };
  await objects.patch(crd, undefined, undefined, 'meshflow-test', true, k8s.PatchStrategy.ServerSideApply);
  const ext = kubeConfig(west).makeApiClient(k8s.ApiextensionsV1Api);
  await eventually(async () => {
    const c = await ext.readCustomResourceDefinition({ name: crd.metadata.name });
    return c.status?.conditions?.find((x) => x.type === 'Established' && x.status === 'True') ? true : undefined;
  });
  const widget = {
    apiVersion: 'example.meshflow.dev/v1',
    kind: 'Widget',
    metadata: { name: 'w1', namespace: 'default' },
    spec: { size: 3 },
  };
  await eventually(async () => {
    try {
      return await objects.patch(
        widget,
        undefined,
        undefined,
        'meshflow-test',
        true,
        k8s.PatchStrategy.ServerSideApply,
      );
    } catch {
      return undefined; // discovery may lag the Established condition for a moment
    }
  });
  // Applying again with a change updates the same object, owned by our field manager.
  const applied = (await objects.patch(
    { ...widget, spec: { size: 5 } },
    undefined,
    undefined,
    'meshflow-test',
    true,
    k8s.PatchStrategy.ServerSideApply,
  )) as typeof widget & {
    metadata: { managedFields: Array<{ manager: string }> };
  };
  expect(applied.spec.size).toBe(5);
  expect(applied.metadata.managedFields.map((f) => f.manager)).toContain('meshflow-test');
});

test('a ServiceAccount token from TokenRequest is allowed exactly what RBAC grants', async () => {
  const api = core(east);
  await api.createNamespace({ body: { metadata: { name: 'reader-test' } } });
  await api.createNamespacedServiceAccount({ namespace: 'reader-test', body: { metadata: { name: 'reader' } } });
  const rbac = kubeConfig(east).makeApiClient(k8s.RbacAuthorizationV1Api);
  await rbac.createNamespacedRole({
    namespace: 'reader-test',
    body: {
      metadata: { name: 'service-reader' },
      rules: [{ apiGroups: [''], resources: ['services'], verbs: ['get', 'list'] }],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: 'reader-test',
    body: {
      metadata: { name: 'reader' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'service-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: 'reader-test' }],
    },
  });
  const tr = await api.createNamespacedServiceAccountToken({
    name: 'reader',
    namespace: 'reader-test',
    body: { spec: { audiences: [], expirationSeconds: 600 } },
  });
  const token = tr.status!.token;
  expect(token.split('.')).toHaveLength(3); // a signed JWT

  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'east', server: east.server, caData: fs.readFileSync(east.pki.caCert).toString('base64') }],
    users: [{ name: 'reader', token }],
    contexts: [{ name: 'east', cluster: 'east', user: 'reader' }],
    currentContext: 'east',
  });
  const asReader = kc.makeApiClient(k8s.CoreV1Api);
  const services = await asReader.listNamespacedService({ namespace: 'reader-test' });
  expect(services.items).toEqual([]);
  await expect(asReader.listNamespacedSecret({ namespace: 'reader-test' })).rejects.toMatchObject({ code: 403 });
  await expect(asReader.listNamespacedService({ namespace: 'default' })).rejects.toMatchObject({ code: 403 });
  await expect(
    asReader.createNamespacedService({
      namespace: 'reader-test',
      body: { metadata: { name: 'x' }, spec: { ports: [{ port: 80 }] } },
    }),
  ).rejects.toMatchObject({ code: 403 });
  // The same token means nothing to the other cluster, which has its own signing keys.
  kc.clusters[0] = {
    ...kc.clusters[0],
    server: west.server,
    caData: fs.readFileSync(west.pki.caCert).toString('base64'),
  };
  await expect(
    kc.makeApiClient(k8s.CoreV1Api).listNamespacedService({ namespace: 'reader-test' }),
  ).rejects.toMatchObject({ code: 401 });
});

test('the simulated data plane gives LoadBalancer Services an address from the cluster pool', async () => {
  for (const c of [east, west]) {
    await core(c).createNamespacedService({
      namespace: 'default',
      body: {
        metadata: { name: 'gateway' },
        spec: { type: 'LoadBalancer', selector: { app: 'gw' }, ports: [{ name: 'tls', port: 15443 }] },
      },
    });
  }
  const address = (c: LocalCluster) =>
    eventually(
      async () =>
        (await core(c).readNamespacedServiceStatus({ name: 'gateway', namespace: 'default' })).status?.loadBalancer
          ?.ingress?.[0]?.ip,
    );
  expect(await address(east)).toMatch(/^198\.18\.0\.\d+$/);
  expect(await address(west)).toMatch(/^198\.18\.1\.\d+$/);
});

test('Deployments roll out through ReplicaSets to Running pods with IPs from the pod CIDR', async () => {
  const apps = kubeConfig(east).makeApiClient(k8s.AppsV1Api);
  await apps.createNamespacedDeployment({
    namespace: 'default',
    body: {
      metadata: { name: 'web' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'nginx' }] } },
      },
    },
  });
  const status = await eventually(async () => {
    const d = await apps.readNamespacedDeploymentStatus({ name: 'web', namespace: 'default' });
    return d.status?.availableReplicas === 2 ? d.status : undefined;
  });
  expect(status.conditions?.find((c) => c.type === 'Available')?.status).toBe('True');
  const pods = (await core(east).listNamespacedPod({ namespace: 'default', labelSelector: 'app=web' })).items;
  expect(pods.map((p) => p.status?.phase)).toEqual(['Running', 'Running']);
  for (const p of pods) {
    expect(p.status?.podIP).toMatch(/^10\.61\.\d+\.\d+$/);
    expect(p.spec?.nodeName).toBe(NODE_NAME);
    expect(p.metadata?.ownerReferences?.[0]?.kind).toBe('ReplicaSet');
  }
  // The EndpointSlice controller follows the pods.
  await core(east).createNamespacedService({
    namespace: 'default',
    body: { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } },
  });
  const slice = kubeConfig(east).makeApiClient(k8s.DiscoveryV1Api);
  const addresses = await eventually(async () => {
    const s = await slice.listNamespacedEndpointSlice({
      namespace: 'default',
      labelSelector: 'kubernetes.io/service-name=web',
    });
    const all = s.items.flatMap((i) => i.endpoints.flatMap((e) => e.addresses));
    return all.length === 2 ? all.sort() : undefined;
  });
  expect(addresses).toEqual(pods.map((p) => p.status!.podIP!).sort());
  // west's pods come from west's own (default) pod CIDR.
  expect(west.podCidr).not.toBe(east.podCidr);
});

test('a namespace is deleted for real, with what it holds', async () => {
  await core(west).createNamespace({ body: { metadata: { name: 'doomed' } } });
  await core(west).createNamespacedConfigMap({ namespace: 'doomed', body: { metadata: { name: 'x' } } });
  await core(west).deleteNamespace({ name: 'doomed' });
  await eventually(async () => {
    try {
      await core(west).readNamespace({ name: 'doomed' });
      return undefined;
    } catch (err) {
      return (err as { code?: number }).code === 404 ? true : undefined;
    }
  }, 60_000);
});

test('clusters stop, restart from their state, and are deleted without leaving a process', async () => {
  await sim.stop();
  await clusters.stop();
  expect(clusters.list().map((c) => [c.name, c.running])).toEqual([
    ['east', false],
    ['west', false],
  ]);
  expect(await readyz(east)).toBe(false);

  [east, west] = await clusters.start(['east', 'west']);
  sim = await startSimulatedDataPlane([east, west]);
  const ns = await core(east).readNamespace({ name: 'payments' });
  expect(ns.metadata?.name).toBe('payments');

  // The pod CIDR chosen at creation outlives the restart.
  expect(east.podCidr).toBe('10.61.0.0/16');
  // Every process of each cluster: API server, controller manager, scheduler, kwok.
  const pids = ['east', 'west'].flatMap((n) =>
    ['apiserver', ...COMPONENTS.filter((c) => ['controller-manager', 'scheduler', 'kwok'].includes(c))].map((c) =>
      runningPid(clusters.pidFile(n, c), state),
    ),
  );
  expect(pids).toHaveLength(8);
  expect(pids.every((p) => p !== undefined)).toBe(true);
  await sim.stop();
  await clusters.delete(['east', 'west']);
  for (const pid of pids)
    expect(fs.existsSync(`/proc/${pid}`) && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(state)).toBe(
      false,
    );
  expect(fs.existsSync(clusters.root)).toBe(false);
});

/** Command lines of the processes whose command line names one of `dirs`. */
function processesIn(dirs: string[]): string[] {
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .flatMap((p) => {
      try {
        const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ');
        return dirs.some((d) => cmd.includes(d + path.sep)) ? [cmd] : [];
      } catch {
        return []; // gone meanwhile
      }
    });
}

test('clusters deleted at once stop together, outside the lock; a cluster created meanwhile runs on', async () => {
  const local = new LocalClusters(scratchDir('local-delete'), testLocalTools());
  const doomed = await local.start(['one', 'two']);
  const dirs = doomed.map((c) => path.dirname(c.kubeconfig));
  for (const c of doomed) {
    startSimulatedDataPlaneDaemon(c);
    // In istiod's place: a program under the supervisor, which restarts a program that is killed.
    startSupervisedDaemon({
      file: process.execPath,
      args: ['-e', 'setInterval(() => undefined, 1000)', path.dirname(c.kubeconfig) + path.sep],
      pidFile: local.pidFile(c.name, 'istiod'),
      marker: path.dirname(c.kubeconfig),
    });
  }
  for (const c of doomed) {
    await until('the supervised program', async () =>
      supervisedPid(local.pidFile(c.name, 'istiod'), path.dirname(c.kubeconfig)),
    );
  }
  // API server, controller manager and its supervisor, scheduler, kwok and its supervisor,
  // simulated data plane, a supervisor and its program: 9 a cluster.
  expect(processesIn(dirs)).toHaveLength(18);

  const { deleted, created } = await withLock(local.root, async () => {
    // While the lock is held elsewhere, both deletes still stop every process of their cluster.
    const deleted = Promise.all([local.delete(['one']), local.delete(['two'])]);
    await until('no process of the deleted clusters', async () => (processesIn(dirs).length ? undefined : true));
    // A cluster created now takes the lock in turn with the deletes, which must leave etcd to it.
    return { deleted, created: local.start(['three']) };
  });
  const [[three]] = await Promise.all([created, deleted]);
  expect(processesIn(dirs)).toEqual([]);
  expect(local.list().map((c) => c.name)).toEqual(['three']);
  expect(await readyz(three)).toBe(true);

  await local.delete(['three']);
  expect(processesIn([local.root])).toEqual([]);
  expect(fs.existsSync(local.root)).toBe(false);
});
