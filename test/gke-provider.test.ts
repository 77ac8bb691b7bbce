// The GKE provider against the emulator, one promise at a time: a retried create resumes the
// operation its earlier attempt started (from the step's heartbeat) instead of creating again; a
// delete that meets a create still running waits it out; a firewall rule whose insert answer was
// lost is made once; Google's errors become a fix or a retry; the kubeconfig holds no secret.
import fs from 'node:fs';
import { GkeProvider } from '../src/providers/gke/runtime';
import { collectGarbage } from '../src/gc';
import { type GkeClients, gkeClients, gkeEndpoints } from '../src/gke/clients';
import { GkeEmulator } from '../src/emulators/gke/emulator';
import { parseMeshSpec } from '../src/spec/load';
import type { ClusterSpec } from '../src/spec/schema';
import { PermanentError } from '../src/util/errors';
import { scratchDir, testLocalTools } from './helpers/env';

let emulator: GkeEmulator;
let clients: GkeClients;
let provider: GkeProvider;
let state: string;
const beats: unknown[] = [];
const ctx = { heartbeat: (d?: unknown) => void beats.push(d) };

const spec = parseMeshSpec(`
apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: prov
clusters:
  - { name: a, provider: gke, network: vpc, podCidr: 10.60.0.0/14, gke: { project: prov-project-1, location: us-east1-b, nodeCount: 1 } }
  - { name: b, provider: gke, network: vpc, podCidr: 10.64.0.0/14, gke: { project: prov-project-1, location: us-east1-c, nodeCount: 1 } }
app: { sample: none }
`);
const [a, b] = spec.clusters as [ClusterSpec, ClusterSpec];

beforeAll(async () => {
  state = scratchDir('gke-provider');
  emulator = new GkeEmulator({
    stateDir: scratchDir('gke-provider-emulator'),
    tools: testLocalTools(),
    latency: 0.005,
  });
  const at = await emulator.start();
  clients = gkeClients(gkeEndpoints({ GKE_EMULATOR_HOST: at.grpc, GKE_COMPUTE_EMULATOR_HOST: at.compute }));
  provider = new GkeProvider(state, { clients, poll: { initialMs: 200, factor: 1.5, maxMs: 2000 } });
});

afterAll(async () => {
  await emulator?.reset();
  await emulator?.stop();
  await clients?.close();
});

test('a retried create resumes the operation of the attempt before it, and creates nothing more', async () => {
  // The first attempt asked GKE and reported the operation in its heartbeat, then its worker died.
  const [op] = await clients.clusters.createCluster({
    parent: 'projects/prov-project-1/locations/us-east1-b',
    cluster: {
      name: 'prov-a',
      initialNodeCount: 1,
      ipAllocationPolicy: { useIpAliases: true, clusterIpv4CidrBlock: '10.60.0.0/14' },
      resourceLabels: { 'managed-by': 'meshflow', 'meshflow-mesh': 'prov' },
    },
  });
  const creates = emulator.calls().CreateCluster;
  const previous = {
    operation: op.name,
    doing: 'create GKE cluster prov-a (project prov-project-1, location us-east1-b)',
  };
  const started = Date.now();
  await provider.create('prov', a, { ...ctx, previous });
  const tookMs = Date.now() - started;
  expect(emulator.calls().CreateCluster).toBe(creates);
  expect(
    emulator
      .clusters()
      .filter((c) => c.name === 'prov-a')
      .map((c) => c.status),
  ).toEqual(['RUNNING']);
  // Its heartbeats carry the operation, for the attempt after this one.
  expect(beats).toContainEqual(expect.objectContaining({ operation: op.name, status: 'DONE' }));
  // Polled with backoff, not hot: from 200 ms growing by 1.5 up to 2 s between polls, as many polls as fit in
  // the time the create took (a 1.5 s create: 4; more when a loaded machine makes it slower), and two more.
  let backoffPolls = 0;
  for (let t = 0, wait = 200; t < tookMs; t += wait, wait = Math.min(wait * 1.5, 2000)) backoffPolls++;
  expect(
    provider.operationCalls.get('projects/prov-project-1/locations/us-east1-b/clusters/prov-a'),
  ).toBeLessThanOrEqual(backoffPolls + 2);
});

test('access: the endpoint and CA GKE reports, a token in memory, a kubeconfig with no secret in it', async () => {
  const access = await provider.access('prov', a);
  expect(access.apiServer).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  expect(Buffer.from(access.caData, 'base64').toString()).toContain('BEGIN CERTIFICATE');
  expect(access.token).toBe('gke-emulator-access-token');
  expect(access.local).toBe(true);
  expect(fs.statSync(access.kubeconfig).mode & 0o777).toBe(0o600);
  const text = fs.readFileSync(access.kubeconfig, 'utf8');
  expect(text).toContain(`server: ${access.apiServer}`);
  expect(text).toContain('gke_prov-project-1_us-east1-b_prov-a');
});

test('a delete that meets a create still running waits for it, then deletes', async () => {
  await clients.clusters.createCluster({
    parent: 'projects/prov-project-1/locations/us-east1-c',
    cluster: {
      name: 'prov-b',
      initialNodeCount: 1,
      resourceLabels: { 'managed-by': 'meshflow', 'meshflow-mesh': 'prov' },
    },
  });
  // GKE answers FAILED_PRECONDITION to a delete while the create runs: the provider waits it out.
  await provider.delete('prov', b, ctx);
  expect(emulator.clusters().filter((c) => c.name === 'prov-b')).toEqual([]);
});

test('a delete waiting for a running create stops when its step is cancelled, and deletes nothing', async () => {
  const c: ClusterSpec = { ...b, name: 'c', gke: { ...b.gke!, location: 'us-east1-d' } };
  await clients.clusters.createCluster({
    parent: 'projects/prov-project-1/locations/us-east1-d',
    cluster: {
      name: 'prov-c',
      initialNodeCount: 1,
      resourceLabels: { 'managed-by': 'meshflow', 'meshflow-mesh': 'prov' },
    },
  });
  const cancel = new AbortController();
  const deletes = emulator.calls().DeleteCluster ?? 0;
  const opPath = 'projects/prov-project-1/locations/us-east1-d/clusters/prov-c';
  const deleting = provider.delete('prov', c, { ...ctx, signal: cancel.signal });
  const outcome = deleting.then(
    () => 'deleted',
    (err: Error) => err,
  );
  await new Promise((r) => setTimeout(r, 300));
  const pollsAtCancel = provider.operationCalls.get(opPath) ?? 0;
  cancel.abort(new Error('step cancelled'));
  expect(await outcome).toEqual(new Error('step cancelled'));
  // It neither polled on in a loop nor went on to delete once the create was done.
  expect((provider.operationCalls.get(opPath) ?? 0) - pollsAtCancel).toBeLessThanOrEqual(1);
  expect(emulator.calls().DeleteCluster ?? 0).toBe(deletes);
  await provider.delete('prov', c, ctx); // the retry of the step finishes the job
  expect(emulator.clusters().filter((x) => x.name === 'prov-c')).toEqual([]);
});

test('a firewall rule whose insert answer was lost is made once, and deleted only by its mesh', async () => {
  await provider.create('prov', b, ctx);
  emulator.fault({ method: 'firewalls.insert', kind: 'lose-answer' });
  const first = await provider.ensureFirewall('prov', 'vpc', [a, b], ctx).then(
    () => 'made',
    (err: Error) => err,
  );
  // The lost answer is retryable (503 -> UNAVAILABLE); the retry finds the rule this mesh made.
  expect(first).toBeInstanceOf(Error);
  expect(first).not.toBeInstanceOf(PermanentError);
  const again = await provider.ensureFirewall('prov', 'vpc', [a, b], ctx);
  expect(again).toEqual({
    project: 'prov-project-1',
    name: 'meshflow-prov-vpc',
    sourceRanges: ['10.60.0.0/14', '10.64.0.0/14'],
  });
  expect(emulator.firewalls().map((f) => f.name)).toEqual(['meshflow-prov-vpc']);
  // Another mesh's undo leaves it alone; its own removes it.
  await expect(provider.deleteFirewall('other', 'vpc', 'prov-project-1', ctx)).resolves.toBeUndefined();
  expect(emulator.firewalls()).toHaveLength(1);
  await provider.deleteFirewall('prov', 'vpc', 'prov-project-1', ctx);
  expect(emulator.firewalls()).toEqual([]);
});

test("Google's errors: a fix for what no retry mends, a retry for the rest", async () => {
  emulator.fault({ method: 'CreateCluster', code: 'PERMISSION_DENIED' });
  const other = { ...a, name: 'c', gke: { ...a.gke!, clusterName: 'prov-c' } };
  const denied = await provider.create('prov', other, ctx).catch((e: Error) => e);
  expect(denied).toBeInstanceOf(PermanentError);
  expect((denied as Error).message).toContain('roles/container.admin');
  expect((denied as Error).message).toContain('gcloud services enable container.googleapis.com');
  emulator.fault({ method: 'CreateCluster', code: 'UNAVAILABLE' });
  const unavailable = await provider.create('prov', other, ctx).catch((e: Error) => e);
  expect(unavailable).not.toBeInstanceOf(PermanentError);
  expect((unavailable as Error).message).toContain('will retry');
  const bad = { ...a, name: 'd', gke: { ...a.gke!, clusterName: 'prov-d', nodeCount: 0 } };
  const invalid = await provider.create('prov', bad, ctx).catch((e: Error) => e);
  expect(invalid).toBeInstanceOf(PermanentError);
  expect((invalid as Error).message).toMatch(/GKE refused to create .*Fix the cluster's gke settings/);
  expect(
    emulator
      .clusters()
      .map((c) => c.name)
      .sort(),
  ).toEqual(['prov-a', 'prov-b']);
  // Teardown of both: gone, with their kubeconfigs.
  await Promise.all([provider.delete('prov', a, ctx), provider.delete('prov', b, ctx)]);
  expect(emulator.clusters()).toEqual([]);
  expect(fs.existsSync(`${state}/gke/prov`)).toBe(false);
});

test('gc --provider gke: labelled clusters and firewall rules of gone meshes are found and removed, open ones kept', async () => {
  const labelled = (mesh: string) => ({ 'managed-by': 'meshflow', 'meshflow-mesh': mesh, 'meshflow-cluster': 'a' });
  const gone = { ...a, gke: { ...a.gke!, clusterName: 'gone-a' } };
  const open = { ...a, gke: { ...a.gke!, clusterName: 'open-a' } };
  for (const [name, mesh] of [
    ['gone-a', 'gone'],
    ['open-a', 'open'],
    ['theirs-a', ''],
  ]) {
    await clients.clusters.createCluster({
      parent: 'projects/prov-project-1/locations/us-east1-b',
      cluster: { name, initialNodeCount: 1, resourceLabels: mesh ? labelled(mesh) : { team: 'x' } },
    });
  }
  await provider.create('gone', gone, ctx); // waits for its operation
  await provider.create('open', open, ctx);
  await provider.ensureFirewall('gone', 'vpc', [gone], ctx);
  const isOpen = async (mesh: string) => mesh === 'open';
  const dry = await collectGarbage({
    stateDir: state,
    isOpen,
    dryRun: true,
    clouds: [{ provider: 'gke', scopes: ['prov-project-1'], search: provider.garbage }],
  });
  const seen = dry.findings.map((f) => `${f.kind} ${f.what} ${f.mesh} ${f.action}`).sort();
  expect(seen).toEqual([
    'firewall-rule meshflow-gone-vpc gone would-delete',
    'gke-cluster gone-a gone would-delete',
    'gke-cluster open-a open kept',
  ]);
  const clouds = [{ provider: 'gke', scopes: ['prov-project-1'], search: provider.garbage }];
  const done = await collectGarbage({ stateDir: state, isOpen, clouds });
  expect(
    done.findings
      .filter((f) => f.action === 'deleted')
      .map((f) => f.what)
      .sort(),
  ).toEqual(['gone-a', 'meshflow-gone-vpc']);
  expect(
    emulator
      .clusters()
      .map((c) => c.name)
      .sort(),
  ).toEqual(['open-a', 'theirs-a']);
  expect(emulator.firewalls()).toEqual([]);
});
