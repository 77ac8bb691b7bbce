// The GKE emulator, through the real Google clients over their real wire protocols: a cluster is
// created by an operation and then serves the Kubernetes API to the Google access token; GKE's
// errors and injected faults reach the client as GKE's would; firewall rules go through Compute
// operations and honour requestId; a restarted emulator keeps its clusters and finishes its
// operations; a deleted cluster takes its backing local cluster with it.
import * as k8s from '@kubernetes/client-node';
import { EMULATOR_ACCESS_TOKEN, type GkeClients, gkeClients, gkeEndpoints } from '../src/gke/clients';
import { GkeEmulator } from '../src/emulators/gke/emulator';
import { LocalClusters, NODE_NAME } from '../src/local/clusters';
import { sleep } from '../src/util/net';
import { scratchDir, testLocalTools } from './helpers/env';

const PROJECT = 'meshflow-test';
const ZONE = 'us-central1-a';
const PARENT = `projects/${PROJECT}/locations/${ZONE}`;
const clusterName = (name: string) => `${PARENT}/clusters/${name}`;

let stateDir: string;
let emulator: GkeEmulator;
let hosts: { grpc: string; compute: string };
let gke: GkeClients;

async function startEmulator(latency = 0.002): Promise<void> {
  emulator = new GkeEmulator({ stateDir, tools: testLocalTools(), latency });
  hosts = await emulator.start();
  gke = gkeClients(gkeEndpoints({ GKE_EMULATOR_HOST: hosts.grpc, GKE_COMPUTE_EMULATOR_HOST: hosts.compute }));
}

/** Polls GetOperation as a caller would, until DONE. */
async function done(operation: string | null | undefined) {
  const name = `${PARENT}/operations/${operation}`;
  for (const deadline = Date.now() + 90_000; Date.now() < deadline; await sleep(100)) {
    const [op] = await gke.clusters.getOperation({ name });
    if (op.status === 'DONE') return op;
  }
  throw new Error(`operation ${operation} did not finish`);
}

function createRequest(name: string, extra: Record<string, unknown> = {}) {
  return { parent: PARENT, cluster: { name, initialNodeCount: 1, ...extra } };
}

function kubeApi(endpoint: string, caData: string, token: string): k8s.CoreV1Api {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'gke', server: `https://${endpoint}`, caData }],
    users: [{ name: 'gke', token }],
    contexts: [{ name: 'gke', cluster: 'gke', user: 'gke' }],
    currentContext: 'gke',
  });
  return kc.makeApiClient(k8s.CoreV1Api);
}

beforeAll(async () => {
  stateDir = scratchDir('gke-emulator');
  await startEmulator();
});

afterAll(async () => {
  await gke?.close();
  await emulator?.reset();
  await emulator?.stop();
});

test('a created cluster goes PROVISIONING to RUNNING and serves the Kubernetes API to the Google token', async () => {
  const [op] = await gke.clusters.createCluster(
    createRequest('east', {
      nodeConfig: { machineType: 'e2-standard-4' },
      releaseChannel: { channel: 'REGULAR' },
      network: 'default',
      ipAllocationPolicy: { useIpAliases: true, clusterIpv4CidrBlock: '10.20.0.0/14' },
      resourceLabels: { 'meshflow-mesh': 'demo' },
    }),
  );
  expect(op).toMatchObject({ operationType: 'CREATE_CLUSTER', status: 'PENDING', location: ZONE });
  expect(op.name).toMatch(/^operation-\d+-[0-9a-f]{8}$/);
  expect((await gke.clusters.getCluster({ name: clusterName('east') }))[0].status).toBe('PROVISIONING');

  expect((await done(op.name)).error).toBeFalsy();
  const [cluster] = await gke.clusters.getCluster({ name: clusterName('east') });
  expect(cluster).toMatchObject({
    status: 'RUNNING',
    location: ZONE,
    zone: ZONE,
    clusterIpv4Cidr: '10.20.0.0/14',
    network: 'default',
    resourceLabels: { 'meshflow-mesh': 'demo' },
    currentMasterVersion: '1.34.4-gke.1000',
    releaseChannel: { channel: 'REGULAR' },
  });
  expect(cluster.nodePools?.[0]).toMatchObject({ name: 'default-pool', status: 'RUNNING', initialNodeCount: 1 });
  expect(cluster.nodePools?.[0].config?.machineType).toBe('e2-standard-4');
  expect(cluster.endpoint).toMatch(/^127\.0\.0\.1:\d+$/);
  const ca = cluster.masterAuth!.clusterCaCertificate!;
  expect(Buffer.from(ca, 'base64').toString()).toContain('BEGIN CERTIFICATE');

  const core = kubeApi(cluster.endpoint!, ca, await gke.accessToken());
  const namespaces = await core.listNamespace();
  expect(namespaces.items.map((n) => n.metadata?.name)).toContain('default');
  // The node's pods get IPs from the cluster's range (its first /16).
  expect((await core.readNode({ name: NODE_NAME })).spec?.podCIDR).toBe('10.20.0.0/16');
  await expect(kubeApi(cluster.endpoint!, ca, 'not-a-google-token').listNamespace()).rejects.toMatchObject({
    code: 401,
  });
  expect(emulator.backing(PROJECT, ZONE, 'east')?.localName).toMatch(/^gke-[0-9a-f]{10}$/);
});

test("GKE's errors: ALREADY_EXISTS, NOT_FOUND, INVALID_ARGUMENT, UNAUTHENTICATED", async () => {
  await expect(gke.clusters.createCluster(createRequest('east'))).rejects.toMatchObject({
    code: 6,
    details: expect.stringContaining(`Already exists: ${clusterName('east')}`),
  });
  await expect(gke.clusters.getCluster({ name: clusterName('nowhere') })).rejects.toMatchObject({ code: 5 });
  await expect(gke.clusters.createCluster(createRequest('Bad_Name'))).rejects.toMatchObject({
    code: 3,
    details: expect.stringContaining('cluster.name'),
  });
  await expect(gke.clusters.createCluster(createRequest('empty', { initialNodeCount: 0 }))).rejects.toMatchObject({
    code: 3,
    details: expect.stringContaining('initial_node_count must be greater than zero'),
  });
  await expect(
    gke.clusters.createCluster({ parent: 'projects/Not_A_Project/locations/us-central1', cluster: { name: 'x' } }),
  ).rejects.toMatchObject({ code: 3, details: expect.stringContaining('Invalid project ID') });
  // grpc-js sends no call credentials over the emulator's insecure channel; a token that is sent must be ours.
  const wrongToken = { otherArgs: { headers: { authorization: 'Bearer someone-else' } } };
  await expect(gke.clusters.getServerConfig({ name: PARENT }, wrongToken)).rejects.toMatchObject({ code: 16 });
  expect(emulator.clusters().map((c) => c.name)).toEqual(['east']);
});

test('faults: UNAVAILABLE then success, an operation that fails, a lost answer to a create', async () => {
  emulator.fault({ method: 'CreateCluster', code: 'UNAVAILABLE' });
  emulator.fault({ method: 'CreateCluster', kind: 'operation-error', times: 2, message: 'Insufficient quota (test)' });
  const before = emulator.calls().CreateCluster;
  // CreateCluster is not retried by the client: the caller sees UNAVAILABLE, and nothing was made.
  await expect(gke.clusters.createCluster(createRequest('broken'))).rejects.toMatchObject({ code: 14 });
  expect(emulator.clusters().map((c) => c.name)).toEqual(['east']);
  const [op] = await gke.clusters.createCluster(createRequest('broken'));
  expect(emulator.calls().CreateCluster).toBe(before + 2);
  // Another operation on the cluster is refused while this one runs.
  await expect(gke.clusters.deleteCluster({ name: clusterName('broken') })).rejects.toMatchObject({
    code: 9,
    details: expect.stringContaining('incompatible operation'),
  });
  const failed = await done(op.name);
  expect(failed.error).toMatchObject({ code: 13, message: 'Insufficient quota (test)' });
  expect((await gke.clusters.getCluster({ name: clusterName('broken') }))[0].status).toBe('ERROR');

  emulator.fault({ method: 'CreateCluster', kind: 'lose-answer' });
  await expect(gke.clusters.createCluster(createRequest('lost'))).rejects.toMatchObject({ code: 14 });
  const [lost] = await gke.clusters.getCluster({ name: clusterName('lost') });
  expect(lost.name).toBe('lost');
  const [{ operations }] = await gke.clusters.listOperations({ parent: PARENT });
  const lostOp = operations!.find((o) => o.targetLink?.endsWith('/clusters/lost'));
  expect(lostOp?.operationType).toBe('CREATE_CLUSTER');

  // GetCluster is retried by the client on UNAVAILABLE: two failures are not seen.
  const gets = emulator.calls().GetCluster;
  emulator.fault({ method: 'GetCluster', code: 'UNAVAILABLE', times: 2 });
  expect((await gke.clusters.getCluster({ name: clusterName('east') }))[0].status).toBe('RUNNING');
  expect(emulator.calls().GetCluster).toBe(gets + 3);

  await done(lostOp!.name);
  for (const name of ['broken', 'lost']) {
    const [del] = await gke.clusters.deleteCluster({ name: clusterName(name) });
    expect((await done(del.name)).error).toBeFalsy();
  }
  expect(emulator.clusters().map((c) => c.name)).toEqual(['east']);
});

test('firewall rules: insert and wait, get, list, requestId answered once, delete', async () => {
  const requestId = '6f1f0b2e-8f7a-4c1e-9d3b-2a4c5e6f7a8b';
  const rule = {
    name: 'meshflow-demo-pods',
    network: 'global/networks/default',
    sourceRanges: ['10.20.0.0/14'],
    targetTags: ['gke-east'],
    allowed: [{ IPProtocol: 'all' }],
    description: 'pods of mesh demo',
  };
  // The rule is made but the answer is lost; the same requestId gets the same operation back.
  emulator.fault({ method: 'firewalls.insert', kind: 'lose-answer' });
  await expect(gke.firewalls.insert({ project: PROJECT, requestId, firewallResource: rule })).rejects.toMatchObject({
    code: 503,
  });
  const [insert] = await gke.firewalls.insert({ project: PROJECT, requestId, firewallResource: rule });
  const [again] = await gke.firewalls.insert({ project: PROJECT, requestId, firewallResource: rule });
  expect(again.name).toBe(insert.name);
  let [op] = await gke.operations.wait({ project: PROJECT, operation: insert.name });
  while (op.status !== 'DONE') [op] = await gke.operations.wait({ project: PROJECT, operation: insert.name });
  expect(op).toMatchObject({ operationType: 'insert', progress: 100 });
  expect(op.error).toBeFalsy();

  const [got] = await gke.firewalls.get({ project: PROJECT, firewall: rule.name });
  expect(got).toMatchObject({ name: rule.name, sourceRanges: rule.sourceRanges, targetTags: rule.targetTags });
  expect(got.network).toBe(`https://www.googleapis.com/compute/v1/projects/${PROJECT}/global/networks/default`);
  const [listed] = await gke.firewalls.list({ project: PROJECT, filter: `name = "${rule.name}"` });
  expect(listed.map((f) => f.name)).toEqual([rule.name]);
  expect(emulator.firewalls()).toEqual([expect.objectContaining({ name: rule.name, targetTags: rule.targetTags })]);
  // Compute errors reach the caller with the HTTP status as their code.
  await expect(gke.firewalls.insert({ project: PROJECT, firewallResource: rule })).rejects.toMatchObject({ code: 409 });

  const [del] = await gke.firewalls.delete({ project: PROJECT, firewall: rule.name });
  [op] = await gke.operations.wait({ project: PROJECT, operation: del.name });
  while (op.status !== 'DONE') [op] = await gke.operations.wait({ project: PROJECT, operation: del.name });
  await expect(gke.firewalls.get({ project: PROJECT, firewall: rule.name })).rejects.toMatchObject({ code: 404 });
  expect(emulator.firewalls()).toEqual([]);

  const wrong = await fetch(`http://${hosts.compute}/compute/v1/projects/${PROJECT}/global/firewalls`, {
    headers: { authorization: 'Bearer someone-else' },
  });
  expect(wrong.status).toBe(401);
  expect(EMULATOR_ACCESS_TOKEN).not.toBe('someone-else');
});

test('faults and state over HTTP on the compute port', async () => {
  const post = (body: string) => fetch(`http://${hosts.compute}/emulator/faults`, { method: 'POST', body });
  const bad = await post('{"method": "CreateCluster", "code": "NOPE"}');
  expect(bad.status).toBe(400);
  expect(((await bad.json()) as { error: string }).error).toContain('"code" must be one of');
  expect((await post('{not json')).status).toBe(400);
  expect((await post('{"method": "GetServerConfig", "code": "PERMISSION_DENIED"}')).status).toBe(204);
  await expect(gke.clusters.getServerConfig({ name: PARENT })).rejects.toMatchObject({ code: 7 });
  const [config] = await gke.clusters.getServerConfig({ name: PARENT });
  expect(config.validMasterVersions).toContain(config.defaultClusterVersion);

  const clusters = (await (await fetch(`http://${hosts.compute}/emulator/clusters`)).json()) as Array<{ name: string }>;
  expect(clusters.map((c) => c.name)).toEqual(['east']);
  const calls = (await (await fetch(`http://${hosts.compute}/emulator/calls`)).json()) as Record<string, number>;
  expect(calls.GetServerConfig).toBe(3);
});

test('a restarted emulator keeps its clusters and finishes the operations it had started', async () => {
  const [east] = await gke.clusters.getCluster({ name: clusterName('east') });
  const restart = async (latency?: number) => {
    await gke.close();
    await emulator.stop();
    await startEmulator(latency);
  };
  // Slower, so that the operation is still running when the emulator stops.
  await restart(0.005);
  emulator.fault({ method: 'CreateCluster', kind: 'operation-error' });
  const [op] = await gke.clusters.createCluster(createRequest('interrupted'));
  await restart();
  expect(emulator.clusters().find((c) => c.name === 'interrupted')?.status).toBe('PROVISIONING');
  const [again] = await gke.clusters.getCluster({ name: clusterName('east') });
  expect(again).toMatchObject({ status: 'RUNNING', endpoint: east.endpoint, selfLink: east.selfLink });
  expect((await done(op.name)).status).toBe('DONE');
  const [del] = await gke.clusters.deleteCluster({ name: clusterName('interrupted') });
  await done(del.name);
});

test('deleting a cluster stops it, then removes it and its backing local cluster', async () => {
  const [op] = await gke.clusters.deleteCluster({ name: clusterName('east') });
  expect(op).toMatchObject({ operationType: 'DELETE_CLUSTER' });
  expect((await gke.clusters.getCluster({ name: clusterName('east') }))[0].status).toBe('STOPPING');
  expect((await done(op.name)).error).toBeFalsy();
  await expect(gke.clusters.getCluster({ name: clusterName('east') })).rejects.toMatchObject({ code: 5 });
  expect(new LocalClusters(stateDir, testLocalTools()).list()).toEqual([]);
  expect((await gke.clusters.listClusters({ parent: `projects/${PROJECT}/locations/-` }))[0].clusters).toEqual([]);
});
