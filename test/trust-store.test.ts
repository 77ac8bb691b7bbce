// The trust store on a real API server (a local cluster standing in for the management cluster):
// entries round-trip byte for byte in one labelled Secret per mesh, concurrent writers of the same
// entries end with one value (and two attempts of the root-ca step with one root), deleting a mesh
// removes its Secret only, and a wrong MESHFLOW_TRUST_STORE names the part that is wrong. Then a
// mesh on the Temporal dev server with this store: its keys are in the Secret and nowhere in the
// worker's state directory or the workflow history, and `down` removes the Secret.
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { type ActivityDeps, createActivities } from '../src/activities/mesh-activities';
import { startMesh, teardownMesh } from '../src/client';
import { LocalClusters } from '../src/local/clusters';
import { LOCAL_TOOL_NAMES } from '../src/local/tools';
import { parseMeshSpec } from '../src/spec/load';
import { TRUST_STORE_VAR, trustStoreFromEnv } from '../src/trust-store/from-env';
import { OWNER, OWNER_ANNOTATION, secretName } from '../src/trust-store/kubernetes';
import { StateDirTrustStore } from '../src/trust-store/state-dir';
import type { TrustStore } from '../src/trust-store/store';
import { activityDeps, createWorker } from '../src/worker';
import { scratchDir, tool } from './helpers/env';
import { historyPayloadText } from './helpers/histories';
import { waitPhase } from './helpers/mesh';
import { devServer } from './helpers/temporal';

const NAMESPACE = 'meshflow-trust';
let management: LocalClusters;
let kubeconfig: string;
let core: k8s.CoreV1Api;
/** The store as a worker builds it from the variable. */
let store: TrustStore;
const variable = () => `kubernetes:${kubeconfig}#mgmt/${NAMESPACE}`;
const fromEnv = (value: string) => trustStoreFromEnv(scratchDir('unused-state'), { [TRUST_STORE_VAR]: value });
const secretOf = (mesh: string) => core.readNamespacedSecret({ name: secretName(mesh), namespace: NAMESPACE });
const decoded = (s: k8s.V1Secret) =>
  Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));

beforeAll(async () => {
  management = new LocalClusters(scratchDir('trust-mgmt'), {
    kubeApiserver: tool('kube-apiserver'),
    etcd: tool('etcd'),
  });
  const [cluster] = await management.start(['mgmt']);
  kubeconfig = cluster.kubeconfig;
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  store = fromEnv(variable());
}, 120_000);

afterAll(async () => {
  await management?.delete(['mgmt']);
});

const PEM = (what: string) => `-----BEGIN ${what}-----\n${'QUJD'.repeat(40)}\n-----END ${what}-----\n`;

describe('the Kubernetes trust store', () => {
  test('entries round-trip in one labelled Opaque Secret per mesh; a second put keeps the first', async () => {
    expect(store.where).toBe(`namespace ${NAMESPACE} of kubeconfig ${kubeconfig}, context mgmt`);
    expect(await store.list('rt')).toEqual([]);
    expect(await store.get('rt', 'root-key.pem')).toBeUndefined();
    const root = { 'root-key.pem': PEM('PRIVATE KEY'), 'root-cert.pem': PEM('CERTIFICATE') };
    expect(await store.putIfAbsent('rt', root)).toEqual(root);
    const east = { 'east/ca-key.pem': PEM('EC PRIVATE KEY'), 'east/ca-cert.pem': PEM('CERTIFICATE') };
    expect(await store.putIfAbsent('rt', east)).toEqual(east);
    expect(await store.putIfAbsent('rt', { 'root-key.pem': 'other', 'root-cert.pem': 'other' })).toEqual(root);
    expect(await store.get('rt', 'east/ca-key.pem')).toBe(east['east/ca-key.pem']);
    expect(await store.list('rt')).toEqual(['east/ca-cert.pem', 'east/ca-key.pem', 'root-cert.pem', 'root-key.pem']);

    const secret = await secretOf('rt');
    expect(secret.type).toBe('Opaque');
    expect(secret.metadata?.labels).toEqual({ 'app.kubernetes.io/managed-by': 'meshflow', 'meshflow.dev/mesh': 'rt' });
    expect(secret.metadata?.annotations?.[OWNER_ANNOTATION]).toBe(OWNER);
    expect(decoded(secret)).toEqual({
      'root-key.pem': root['root-key.pem'],
      'root-cert.pem': root['root-cert.pem'],
      'east_ca-key.pem': east['east/ca-key.pem'],
      'east_ca-cert.pem': east['east/ca-cert.pem'],
    });
    await expect(store.putIfAbsent('rt', { 'East/../key': 'x' })).rejects.toThrow(/entry names must match/);
  });

  test('put-if-absent under concurrent writers keeps exactly one value, whoever wins', async () => {
    // Two workers: two stores built separately, each with its own connections.
    const other = fromEnv(variable());
    const started = performance.now();
    for (let round = 0; round < 10; round++) {
      const mesh = `race-${round}`;
      const write = (s: typeof store, who: string) =>
        s.putIfAbsent(mesh, {
          [`c${round % 3}/ca-key.pem`]: `${who} key`,
          [`c${round % 3}/ca-cert.pem`]: `${who} cert`,
        });
      // A first entry of another name makes the racers update the Secret (409 Conflict) in odd rounds,
      // and create it (409 AlreadyExists) in even ones.
      if (round % 2) await store.putIfAbsent(mesh, { 'root-cert.pem': 'first' });
      const answers = await Promise.all([write(store, 'a'), write(other, 'b'), write(store, 'c'), write(other, 'd')]);
      expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
      const kept = decoded(await secretOf(mesh));
      const who = answers[0][`c${round % 3}/ca-key.pem`].split(' ')[0];
      expect(kept[`c${round % 3}_ca-cert.pem`]).toBe(`${who} cert`); // a key and its certificate stay together
    }
    console.log(`10 rounds of 4 concurrent put-if-absent: ${Math.round(performance.now() - started)} ms`);

    // Two attempts of the root-ca step at once (two workers): one root, every intermediate signed by it.
    const spec = parseMeshSpec(
      'apiVersion: meshflow.dev/v1alpha1\nkind: Mesh\nname: twice\nclusters:\n' +
        '  - { name: east, provider: local, network: n1 }\n  - { name: west, provider: local, network: n2 }\n',
    );
    const deps = (trustStore: typeof store): ActivityDeps => ({
      stateDir: scratchDir('twice'),
      providers: {} as ActivityDeps['providers'],
      istio: () => Promise.reject(new Error('no Istio build is used by this step')),
      trustStore,
    });
    const step = { id: 'root-ca', kind: 'root-ca' } as const;
    const attempts = await Promise.all(
      [store, other].map((s) => createActivities(deps(s)).createRootCa({ mesh: 'twice', spec, step })),
    );
    expect(attempts[0].outputs?.rootFingerprint).toBe(attempts[1].outputs?.rootFingerprint);
    expect(attempts[0].resources).toEqual([{ type: 'trust', mesh: 'twice' }]);
    expect(await store.list('twice')).toEqual([
      'east/ca-cert.pem',
      'east/ca-key.pem',
      'root-cert.pem',
      'root-key.pem',
      'west/ca-cert.pem',
      'west/ca-key.pem',
    ]);
  });

  test("deleting a mesh removes its Secret only, never one that is not meshflow's", async () => {
    await store.putIfAbsent('del-a', { 'root-key.pem': 'a' });
    await store.putIfAbsent('del-b', { 'root-key.pem': 'b' });
    // A Secret of the name the store would use, made by someone else.
    await core.createNamespacedSecret({
      namespace: NAMESPACE,
      body: { metadata: { name: secretName('del-c') }, stringData: { 'root-key.pem': 'theirs' } },
    });
    await store.deleteMesh('del-a');
    await store.deleteMesh('del-a'); // gone already: nothing to do
    await store.deleteMesh('del-c');
    const names = (await core.listNamespacedSecret({ namespace: NAMESPACE })).items.map((s) => s.metadata?.name);
    expect(names).not.toContain(secretName('del-a'));
    expect(names).toEqual(expect.arrayContaining([secretName('del-b'), secretName('del-c')]));
    expect(await store.get('del-b', 'root-key.pem')).toBe('b');
    await expect(store.putIfAbsent('del-c', { 'root-key.pem': 'ours' })).rejects.toThrow(
      `Secret ${NAMESPACE}/${secretName('del-c')} in the trust store (${store.where}) is not mesh del-c's`,
    );
    expect(decoded(await secretOf('del-c'))).toEqual({ 'root-key.pem': 'theirs' });
  });

  test('a namespace that does not exist is a permanent error naming the store', async () => {
    const missing = fromEnv(`kubernetes:${kubeconfig}/no-such-namespace`);
    await expect(missing.putIfAbsent('m', { 'root-key.pem': 'x' })).rejects.toMatchObject({
      name: 'PermanentError',
      message: expect.stringContaining('trust store (namespace no-such-namespace of kubeconfig'),
    });
  });

  test('a wrong MESHFLOW_TRUST_STORE names the variable and the part that is wrong, and no secret', () => {
    const dir = scratchDir('bad-store');
    const notKubeconfig = path.join(dir, 'not-a-kubeconfig');
    fs.writeFileSync(notKubeconfig, 'users: [ { client-key-data: SECRETSECRET\n');
    const cases: Array<[string, RegExp]> = [
      ['vault:/x', /^MESHFLOW_TRUST_STORE: "vault:\/x" is not a trust store: use state-dir .* or kubernetes:</],
      ['kubernetes:', /^MESHFLOW_TRUST_STORE: "kubernetes:" has no namespace/],
      ['kubernetes:/ns', /^MESHFLOW_TRUST_STORE: "kubernetes:\/ns" has no kubeconfig path/],
      [`kubernetes:${kubeconfig}#/ns`, /^MESHFLOW_TRUST_STORE: .* has an empty context after '#'/],
      [`kubernetes:${kubeconfig}/Not_A_Namespace`, /^MESHFLOW_TRUST_STORE: namespace "Not_A_Namespace" is not a/],
      [`kubernetes:${dir}/missing#c/ns`, /^MESHFLOW_TRUST_STORE: kubeconfig .*\/missing cannot be read \(ENOENT\)$/],
      [`kubernetes:${notKubeconfig}/ns`, /^MESHFLOW_TRUST_STORE: kubeconfig .*not-a-kubeconfig is not a kubeconfig/],
      [
        `kubernetes:${kubeconfig}#nope/ns`,
        /^MESHFLOW_TRUST_STORE: context "nope" is not in kubeconfig .* \(it has: mgmt\)$/,
      ],
    ];
    for (const [value, message] of cases) {
      let error: Error | undefined;
      try {
        fromEnv(value);
      } catch (err) {
        error = err as Error;
      }
      expect([value, error?.message]).toEqual([value, expect.stringMatching(message)]);
      expect(error?.message).not.toContain('SECRETSECRET');
    }
    // A context may hold '/' (EKS contexts are ARNs): the namespace is what follows the last '/'.
    expect(() => fromEnv(`kubernetes:${kubeconfig}#arn:aws:eks:eu-west-1:1:cluster/prod/ns`)).toThrow(
      'context "arn:aws:eks:eu-west-1:1:cluster/prod" is not in kubeconfig',
    );
    expect(fromEnv('')).toBeInstanceOf(StateDirTrustStore);
    expect(fromEnv('state-dir')).toBeInstanceOf(StateDirTrustStore);
    // The worker reads the variable when it builds its dependencies: a wrong one stops it there.
    const tools = Object.fromEntries([...LOCAL_TOOL_NAMES, 'istioctl'].map((n) => [n, tool(n)]));
    const saved = process.env[TRUST_STORE_VAR];
    process.env[TRUST_STORE_VAR] = 'kubernetes:/nowhere/ns';
    try {
      expect(() => activityDeps(dir, tools)).toThrow('MESHFLOW_TRUST_STORE: kubeconfig /nowhere cannot be read');
    } finally {
      if (saved === undefined) delete process.env[TRUST_STORE_VAR];
      else process.env[TRUST_STORE_VAR] = saved;
    }
  });
});

describe('the state directory trust store', () => {
  test("keeps the CA directory's layout, and two root-ca attempts on one host keep one root", async () => {
    const stateDir = scratchDir('state-dir-store');
    const spec = parseMeshSpec(
      'apiVersion: meshflow.dev/v1alpha1\nkind: Mesh\nname: local\nclusters:\n' +
        '  - { name: east, provider: local, network: n1 }\n',
    );
    const deps = (): ActivityDeps => ({
      stateDir,
      providers: {} as ActivityDeps['providers'],
      istio: () => Promise.reject(new Error('no Istio build is used by this step')),
      trustStore: new StateDirTrustStore(stateDir),
    });
    const step = { id: 'root-ca', kind: 'root-ca' } as const;
    const attempts = await Promise.all(
      [deps(), deps()].map((d) => createActivities(d).createRootCa({ mesh: 'local', spec, step })),
    );
    expect(attempts[0].outputs?.rootFingerprint).toBe(attempts[1].outputs?.rootFingerprint);
    const dir = path.join(stateDir, 'meshes', 'local', 'ca');
    expect(attempts[0].resources).toEqual([{ type: 'file', path: dir }]);
    expect((fs.readdirSync(dir, { recursive: true }) as string[]).sort()).toEqual([
      'east',
      path.join('east', 'ca-cert.pem'),
      path.join('east', 'ca-key.pem'),
      'root-cert.pem',
      'root-key.pem',
    ]);
    expect(fs.statSync(path.join(dir, 'root-key.pem')).mode & 0o777).toBe(0o600);
  });
});

describe('a mesh whose trust store is the Kubernetes one', () => {
  let env: TestWorkflowEnvironment;

  beforeAll(async () => {
    env = await devServer();
  }, 60_000);

  afterAll(async () => {
    await env?.teardown();
  });

  test('keeps its keys in the Secret only, not in the state directory or history; down removes it', async () => {
    const state = scratchDir('trust-e2e');
    const tools = Object.fromEntries([...LOCAL_TOOL_NAMES, 'istioctl'].map((n) => [n, tool(n)]));
    const worker = await createWorker(env.nativeConnection, 'default', activityDeps(state, tools, store), 'trust-e2e');
    const running = worker.run();
    const mesh = 'ts-e2e';
    const spec = parseMeshSpec(
      `apiVersion: meshflow.dev/v1alpha1\nkind: Mesh\nname: ${mesh}\nttl: 1h\n` +
        'clusters:\n  - { name: c1, provider: local, network: n1 }\napp: { sample: none }\n',
    );
    const started = performance.now();
    const handle = await startMesh(env.client, spec, 'trust-e2e');
    try {
      const ready = await waitPhase(env.client, mesh, ['ready', 'failed', 'deleted'], 240_000, 500);
      const readyMs = performance.now() - started;
      expect(ready.error).toBeUndefined();
      expect(ready.phase).toBe('ready');
      expect(ready.ledger.filter((e) => e.step === 'root-ca').map((e) => e.resource)).toEqual([
        { type: 'trust', mesh },
      ]);
      const entries = decoded(await secretOf(mesh));
      expect(Object.keys(entries).sort()).toEqual(['c1_ca-cert.pem', 'c1_ca-key.pem', 'root-cert.pem', 'root-key.pem']);
      // The cluster's cacerts is what the store holds.
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(new LocalClusters(state, { kubeApiserver: '', etcd: '' }).get(`${mesh}-c1`)!.kubeconfig);
      const cacerts = await kc
        .makeApiClient(k8s.CoreV1Api)
        .readNamespacedSecret({ name: 'cacerts', namespace: 'istio-system' });
      expect(decoded(cacerts)['ca-key.pem']).toBe(entries['c1_ca-key.pem']);
      expect(decoded(cacerts)['root-cert.pem']).toBe(entries['root-cert.pem']);
      // No CA directory, and no CA key in any file of the worker's state directory but the cluster's
      // own storage: its etcd, and its istiod's cacerts mount (the intermediate only, as in any cluster).
      expect(fs.existsSync(path.join(state, 'meshes', mesh, 'ca'))).toBe(false);
      const files = (fs.readdirSync(state, { recursive: true }) as string[])
        .filter((f) => !f.startsWith(path.join('local', 'etcd') + path.sep))
        .filter((f) => fs.statSync(path.join(state, f), { throwIfNoEntry: false })?.isFile());
      const holding = (pem: string) =>
        files.filter((f) => fs.readFileSync(path.join(state, f), 'utf8').includes(pem.split('\n')[1]));
      expect(files.length).toBeGreaterThan(10);
      expect(holding(entries['root-key.pem'])).toEqual([]);
      expect(holding(entries['c1_ca-key.pem'])).toEqual([
        path.join('local', 'clusters', `${mesh}-c1`, 'istiod', 'cacerts', 'ca-key.pem'),
      ]);

      await teardownMesh(env.client, mesh);
      const final = await handle.result();
      expect([final.phase, final.leftBehind, final.ledger]).toEqual(['deleted', [], []]);
      await expect(secretOf(mesh)).rejects.toMatchObject({ code: 404 });
      console.log(
        `one-cluster mesh with the Kubernetes trust store: ready in ${Math.round(readyMs)} ms, ` +
          `deleted after ${Math.round(performance.now() - started - readyMs)} ms more`,
      );

      // Neither outputs, heartbeats nor failures carried a key: decode every payload of the history.
      const all = await historyPayloadText(handle);
      expect(all).toContain('"type":"trust"'); // the payloads were decoded
      expect(all).not.toMatch(/PRIVATE KEY/);
      expect(all).not.toContain(entries['root-key.pem'].split('\n')[1]);
    } finally {
      await teardownMesh(env.client, mesh).catch(() => undefined);
      await handle.result().catch(() => undefined);
      worker.shutdown();
      await running;
    }
  }, 300_000);
});
