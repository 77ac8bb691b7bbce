// Kube.waitDeploymentsAvailable against a real API server with no controllers: the status a
// controller would write is written here by hand. The wait ends at its deadline as
// DeploymentUnavailable, saying why (no controller acted, the ReplicaSet's failure to create pods,
// a pod not scheduled), and that the API server answered with errors when a fault proxy made it.
import * as k8s from '@kubernetes/client-node';
import { DEPLOYMENT_WAIT_MS, DeploymentUnavailableError, Kube } from '../src/adapters/kube';
import { FaultProxy } from '../src/chaos/fault-proxy';
import { type LocalCluster, LocalClusters } from '../src/local/clusters';
import { scratchDir, tool } from './helpers/env';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

const NAMES = ['kube-wait'];
const NS = 'default';
let clusters: LocalClusters;
let local: LocalCluster;
let kube: Kube;
let proxy: FaultProxy;

const WEBHOOK_FAILURE =
  'Internal error occurred: failed calling webhook "namespace.sidecar-injector.istio.io": failed to call webhook';

function deployment(name: string): k8s.V1Deployment {
  const labels = { app: name };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: { metadata: { labels }, spec: { containers: [{ name: 'app', image: 'example/app:1' }] } },
    },
  };
}

/** Writes a Deployment's status as the deployment controller would. */
async function writeStatus(d: k8s.V1Deployment, status: k8s.V1DeploymentStatus): Promise<void> {
  await kube.apps.replaceNamespacedDeploymentStatus({
    name: d.metadata!.name!,
    namespace: NS,
    body: { ...d, status: { observedGeneration: d.metadata!.generation, ...status } },
  });
}

const rejection = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('the wait ended without an error');
    },
    (err: unknown) => err as Error,
  );

beforeAll(async () => {
  const dir = scratchDir('kube-wait');
  clusters = new LocalClusters(dir, { kubeApiserver: tool('kube-apiserver'), etcd: tool('etcd') });
  [local] = await clusters.start(NAMES);
  kube = Kube.fromFile(local.kubeconfig);
  proxy = await new FaultProxy(local).start();
}, 120_000);

afterAll(async () => {
  await proxy?.stop();
  await clusters?.delete(NAMES);
});

test('the default deadline ends the wait before the 10 minutes of the steps that wait', () => {
  expect(DEPLOYMENT_WAIT_MS).toBeLessThanOrEqual(5 * 60_000);
});

test('a Deployment no controller acts on: the wait ends at its deadline and says so', async () => {
  await kube.apps.createNamespacedDeployment({ namespace: NS, body: deployment('unwatched') });
  const started = Date.now();
  const err = await rejection(kube.waitDeploymentsAvailable(NS, ['unwatched'], () => undefined, 1500));
  expect(Date.now() - started).toBeLessThan(10_000);
  expect(err).toBeInstanceOf(DeploymentUnavailableError);
  expect(err.name).toBe('DeploymentUnavailable');
  expect(err.message).toMatch(/^deployment default\/unwatched not available after 2s: 0\/1 replicas available; /);
  expect(err.message).toContain('no controller has acted on it');
});

test("pods that cannot be created: the wait names the ReplicaSet's failure and the pods it has", async () => {
  const d = await kube.apps.createNamespacedDeployment({ namespace: NS, body: deployment('refused') });
  await writeStatus(d, {
    replicas: 0,
    conditions: [
      { type: 'Available', status: 'False', reason: 'MinimumReplicasUnavailable', message: 'no minimum' },
      { type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: WEBHOOK_FAILURE },
    ],
  });
  const owner = { apiVersion: 'apps/v1', kind: 'Deployment', name: 'refused', uid: d.metadata!.uid!, controller: true };
  const rs = await kube.apps.createNamespacedReplicaSet({
    namespace: NS,
    body: {
      metadata: {
        name: 'refused-1',
        ownerReferences: [owner],
        annotations: { 'deployment.kubernetes.io/revision': '1' },
      },
      spec: { replicas: 1, selector: d.spec!.selector, template: d.spec!.template },
    },
  });
  await kube.apps.replaceNamespacedReplicaSetStatus({
    name: 'refused-1',
    namespace: NS,
    body: {
      ...rs,
      status: {
        replicas: 0,
        conditions: [{ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: WEBHOOK_FAILURE }],
      },
    },
  });
  const rsOwner = { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'refused-1', uid: rs.metadata!.uid! };
  await kube.core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name: 'refused-1-a', ownerReferences: [rsOwner] },
      spec: { containers: [{ name: 'app', image: 'example/app:1' }] },
    },
  });
  const err = await rejection(kube.waitDeploymentsAvailable(NS, ['refused'], () => undefined, 1000));
  expect(err).toBeInstanceOf(DeploymentUnavailableError);
  expect(err.message).toContain('Available=False (MinimumReplicasUnavailable: no minimum)');
  expect(err.message).toContain(
    `ReplicaSet refused-1: 0 pod(s), 0 ready, ReplicaFailure=True (FailedCreate: ${WEBHOOK_FAILURE})`,
  );
  expect(err.message).toContain('pod refused-1-a: Pending, not scheduled');
  expect(err.message).not.toContain('no controller');
  expect(err.message).not.toContain('the API server answered');
});

test('through API faults: the wait says how many requests the API server answered with errors', async () => {
  const file = path.join(path.dirname(local.kubeconfig), 'kubeconfig-through-proxy');
  const doc = YAML.parse(fs.readFileSync(local.kubeconfig, 'utf8')) as {
    clusters: Array<{ cluster: { server: string } }>;
  };
  for (const c of doc.clusters) c.cluster.server = proxy.url;
  fs.writeFileSync(file, YAML.stringify(doc), { mode: 0o600 });
  await kube.apps.createNamespacedDeployment({ namespace: NS, body: deployment('behind-faults') });
  let n = 0;
  proxy.faults = [{ kind: '503', when: (req) => req.method === 'GET' && n++ % 2 === 0, times: Infinity }];
  const err = await rejection(
    Kube.fromFile(file).waitDeploymentsAvailable(NS, ['behind-faults'], () => undefined, 2000),
  );
  expect(err).toBeInstanceOf(DeploymentUnavailableError);
  expect(err.message).toContain('no controller has acted on it');
  expect(err.message).toMatch(/the API server answered \d+ of \d+ requests with errors \(last: 503 injected 503\)/);
  expect(proxy.injected.length).toBeGreaterThan(0);
});

test('a Deployment that becomes available ends the wait at once', async () => {
  const d = await kube.apps.createNamespacedDeployment({ namespace: NS, body: deployment('up') });
  const waiting = kube.waitDeploymentsAvailable(NS, ['up'], () => undefined, 30_000);
  await writeStatus(d, { replicas: 1, readyReplicas: 1, availableReplicas: 1 });
  await expect(waiting).resolves.toBeUndefined();
});
