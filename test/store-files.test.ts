// The files a spec names live in the Kubernetes trust store from `up` on. A mesh over an existing
// cluster, with the user's root CA and a manifest file, is started by `meshflow up` (the CLI
// process) with the store: the files are deleted right after, and the mesh still reaches ready,
// bound to no host, under that root, and is torn down with its Secret; no decoded payload of its
// history holds a key, the kubeconfig or the manifest. A second start of the running mesh is
// refused and leaves none of its copies. Then `POST /v1/meshes` with the root CA as PEM text: the
// mesh is ready under that root, and the key is in no payload; `list` and `status` say which token
// started it, and `down` after its end says it has ended and how. Real dev server, real API servers.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { type RunningApi, startApi } from '../src/api/server';
import type { ClusterAccess, IstiodRunner } from '../src/adapters/providers';
import { ExistingProvider } from '../src/providers/existing/runtime';
import { MeshAlreadyRunningError, meshHandle, rotateMesh, startMesh, teardownMesh } from '../src/client';
import { LocalClusters, istiodEndpoint } from '../src/local/clusters';
import { LOCAL_TOOL_NAMES } from '../src/local/tools';
import { packageRoot } from '../src/paths';
import { certificatePem, generateKeyPair, issue, privateKeyPem, x509 } from '../src/pki/certs';
import { startSimulatedDataPlane } from '../src/sim/start';
import { parseMeshSpec } from '../src/spec/load';
import type { ClusterSpec } from '../src/spec/schema';
import { TRUST_STORE_VAR, trustStoreFromEnv } from '../src/trust-store/from-env';
import { secretName } from '../src/trust-store/kubernetes';
import type { TrustStore } from '../src/trust-store/store';
import { type MeshWorker, activityDeps, createWorker } from '../src/worker';
import { TASK_QUEUE } from '../src/workflows/definitions';
import { call } from './helpers/api-http';
import { historyPayloadText, recordHistory } from './helpers/histories';
import { scratchDir, testLocalTools, tool, until } from './helpers/env';
import { waitPhase } from './helpers/mesh';
import { devServer } from './helpers/temporal';

jest.setTimeout(420_000);

const NAMESPACE = 'meshflow-trust';
let env: TestWorkflowEnvironment;
let dir: string;
let state: string;
let management: LocalClusters;
let targets: LocalClusters;
let storeVar: string;
let store: TrustStore;
let core: k8s.CoreV1Api;
let worker: MeshWorker;
let running: Promise<void>;

/** The local cluster of this test that plays existing cluster `c`. */
const targetName = (c: ClusterSpec) => `sf-${c.name}`;

/**
 * Existing clusters that are local clusters here: the real provider (so the kubeconfig comes from
 * the store), plus the istiod meshflow runs beside a local cluster, since no pod runs in one.
 */
class ExistingLocalClusters extends ExistingProvider {
  readonly istiodRunner: IstiodRunner = {
    istiodEndpoint: async (_mesh, c, rev) => istiodEndpoint(await targets.istiodPorts(targetName(c), rev)),
    startIstiod: (_mesh, c, opts) => targets.startIstiod(targetName(c), opts),
    stopIstiod: (_mesh, c, rev) => targets.stopIstiod(targetName(c), rev),
    serveRevision: async (_mesh, c, rev) => targets.serveRevision(targetName(c), rev),
    updateCacerts: (_mesh, c, cacerts) => targets.updateIstiodCacerts(targetName(c), cacerts),
  };

  override async access(mesh: string, c: ClusterSpec): Promise<ClusterAccess> {
    return { ...(await super.access(mesh, c)), istiod: targets.istiod(targetName(c)) };
  }
}

const decoded = (s: k8s.V1Secret) =>
  Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));

/** Every payload of a run's history, decoded, joined. */
const historyText = (workflowId: string) => historyPayloadText(env.client.workflow.getHandle(workflowId));

/** A root CA of the user's own (ECDSA P-256), as PEM. */
async function userRoot(cn: string): Promise<{ cert: string; key: string }> {
  const key = await generateKeyPair('ecdsa-p256');
  const KU = x509.KeyUsageFlags;
  const certificate = await issue(
    { subject: `O=Acme, CN=${cn}`, days: 30, ca: {}, keyUsages: KU.keyCertSign | KU.digitalSignature | KU.cRLSign },
    key,
  );
  return { cert: certificatePem(certificate), key: await privateKeyPem(key) };
}

/** Runs the CLI (dist) against the test's dev server; resolves with its exit code and output. */
function cli(...args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [path.join(packageRoot, 'dist', 'cli', 'main.js'), ...args], {
      env: {
        ...process.env,
        // 0.0.0.0 reaches the dev server's loopback port and is not an address local mode calls its
        // own, so the CLI starts no background worker: the test's worker answers.
        TEMPORAL_ADDRESS: env.address.replace(/^127\.0\.0\.1:/, '0.0.0.0:'),
        TEMPORAL_NAMESPACE: 'default',
        MESHFLOW_STATE_DIR: path.join(dir, 'cli-state'),
        [TRUST_STORE_VAR]: storeVar,
      },
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

const cacertsOf = async (kubeconfig: string) => {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  return decoded(
    await kc.makeApiClient(k8s.CoreV1Api).readNamespacedSecret({ name: 'cacerts', namespace: 'istio-system' }),
  );
};

beforeAll(async () => {
  dir = scratchDir('store-files');
  state = path.join(dir, 'worker-state');
  env = await devServer();
  management = new LocalClusters(path.join(dir, 'mgmt'), { kubeApiserver: tool('kube-apiserver'), etcd: tool('etcd') });
  const [mgmt] = await management.start(['mgmt']);
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(mgmt.kubeconfig);
  core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  storeVar = `kubernetes:${mgmt.kubeconfig}/${NAMESPACE}`;
  store = trustStoreFromEnv(state, { [TRUST_STORE_VAR]: storeVar });
  targets = new LocalClusters(path.join(dir, 'targets'), testLocalTools());
  const tools = Object.fromEntries([...LOCAL_TOOL_NAMES, 'istioctl'].map((n) => [n, tool(n)]));
  const deps = activityDeps(state, tools, store);
  deps.providers.existing = new ExistingLocalClusters(store);
  worker = await createWorker(env.nativeConnection, 'default', deps, TASK_QUEUE);
  running = worker.run();
}, 180_000);

afterAll(async () => {
  worker?.shutdown();
  await running;
  await targets?.delete(targets.list().map((c) => c.name));
  await management?.delete(['mgmt']);
  await env?.teardown();
});

test('an existing-cluster mesh whose files are deleted after up is ready on no host; down removes all', async () => {
  const [east] = await targets.start(['sf-east']);
  startSimulatedDataPlane(east);
  const user = path.join(dir, 'user');
  fs.mkdirSync(user);
  const files = {
    kubeconfig: path.join(user, 'east.kubeconfig'),
    cert: path.join(user, 'root-cert.pem'),
    key: path.join(user, 'root-key.pem'),
    manifest: path.join(user, 'greeter.yaml'),
  };
  fs.copyFileSync(east.kubeconfig, files.kubeconfig);
  const root = await userRoot('Acme Root');
  fs.writeFileSync(files.cert, root.cert);
  fs.writeFileSync(files.key, root.key, { mode: 0o600 });
  const marker = 'only-in-the-manifest-file-4f1c';
  fs.writeFileSync(
    files.manifest,
    `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: greeter }\ndata: { word: ${marker} }\n`,
  );
  const specFile = path.join(user, 'mesh.yaml');
  const specText = `apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: sf
ttl: 1h
clusters:
  - { name: east, provider: existing, network: n1, existing: { kubeconfig: ${files.kubeconfig} } }
trust: { rootCa: { certFile: ${files.cert}, keyFile: ${files.key} } }
app:
  sample: none
  manifests: [{ file: ${files.manifest}, clusters: [east], namespace: greeter }]
`;
  fs.writeFileSync(specFile, specText);

  const started = performance.now();
  const up = await cli('up', specFile, '--detach');
  expect(up).toMatchObject({ code: 0, out: expect.stringContaining('started workflow mesh/sf') });
  // A second start while it runs is refused, and what it copied goes again.
  const copiesOf = async () => [
    ...new Set((await store.list('sf')).filter((e) => e.startsWith('files/')).map((e) => e.split('/')[1])),
  ];
  const before = await copiesOf();
  expect(before).toHaveLength(1);
  await expect(startMesh(env.client, parseMeshSpec(specText), TASK_QUEUE, undefined, store)).rejects.toBeInstanceOf(
    MeshAlreadyRunningError,
  );
  expect(await copiesOf()).toEqual(before);
  fs.rmSync(user, { recursive: true });

  const ready = await waitPhase(env.client, 'sf', ['ready', 'failed', 'deleted'], 300_000, 500);
  const readyMs = performance.now() - started;
  expect(ready.error).toBeUndefined();
  expect(ready.phase).toBe('ready');
  expect([ready.host, ready.hostQueue]).toEqual([undefined, undefined]);
  expect(ready.ledger).toContainEqual(
    expect.objectContaining({ step: 'root-ca', resource: { type: 'trust', mesh: 'sf' } }),
  );
  expect((await cacertsOf(east.kubeconfig))['root-cert.pem']).toBe(root.cert);
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(east.kubeconfig);
  const cm = await kc.makeApiClient(k8s.CoreV1Api).readNamespacedConfigMap({ name: 'greeter', namespace: 'greeter' });
  expect(cm.data?.word).toBe(marker);
  const entries = decoded(await core.readNamespacedSecret({ name: secretName('sf'), namespace: NAMESPACE }));
  const copied = Object.keys(entries).filter((k) => k.startsWith('files_'));
  expect(copied.map((k) => k.split('_').slice(2).join('/')).sort()).toEqual([
    'clusters/east/kubeconfig',
    'manifests/0.yaml',
    'root-ca/cert.pem',
    'root-ca/key.pem',
  ]);

  // Rotation with the Kubernetes store and a root the user keeps: new intermediates under that root,
  // the old ones out of the store's Secret; the root itself rotates when the user gives the new one.
  const rotated = await rotateMesh(env.client, 'sf', { what: 'intermediates' });
  expect(rotated.update).toMatchObject({ state: 'applied' });
  expect(rotated.checks.filter((c) => c.status === 'failed')).toEqual([]);
  expect((await cacertsOf(east.kubeconfig))['root-cert.pem']).toBe(root.cert);
  const secretKeys = async () =>
    Object.keys(decoded(await core.readNamespacedSecret({ name: secretName('sf'), namespace: NAMESPACE })));
  const after = await secretKeys();
  expect(after.filter((k) => k.startsWith('east_')).sort()).toEqual(['east_ca.g2-cert.pem', 'east_ca.g2-key.pem']);
  const byo = await rotateMesh(env.client, 'sf', { what: 'root' }).catch((e: Error) => e);
  expect(((byo as Error).cause as Error).message).toContain(
    'give the new root with `meshflow rotate sf root --root-cert',
  );

  // The user's new root: copied into the store by the client, trusted beside the old one, then every
  // intermediate is its; verify (a CSR signed by istiod, chained to the spec's root) passes at each stage.
  const next = await userRoot('Acme Root 2');
  const nextDir = scratchDir('store-files-new-root');
  const nextFiles = { certFile: path.join(nextDir, 'new-cert.pem'), keyFile: path.join(nextDir, 'new-key.pem') };
  fs.writeFileSync(nextFiles.certFile, next.cert);
  fs.writeFileSync(nextFiles.keyFile, next.key, { mode: 0o600 });
  const rootCopies = async () => (await store.list('sf')).filter((e) => /^files\/[^/]+\/root-ca\/cert\.pem$/.test(e));
  const oldCopy = await rootCopies();
  expect(oldCopy).toHaveLength(1);
  // The CLI: both files or neither; a key that is not the certificate's is named by flag and file, and
  // nothing is copied.
  const half = await cli('rotate', 'sf', 'root', '--root-cert', nextFiles.certFile);
  expect(half.code).not.toBe(0);
  expect(half.out).toContain('a new root CA needs both --root-cert FILE and --root-key FILE');
  const wrongKey = await cli('rotate', 'sf', 'root', '--root-cert', nextFiles.certFile, '--root-key', files.cert);
  expect(wrongKey.code).not.toBe(0);
  expect(wrongKey.out).toContain(`--root-key ${files.cert}: cannot be read`); // the user's old files are gone
  expect(await rootCopies()).toEqual(oldCopy);
  const rootArgs = ['--root-cert', nextFiles.certFile, '--root-key', nextFiles.keyFile];
  const switched = await cli('rotate', 'sf', 'root', '--grace', '1h', ...rootArgs);
  expect(switched.code).toBe(0);
  expect(switched.out).toMatch(/update \S+ applied: rotate root/);
  expect(switched.out).toMatch(/still trusted until .*\n {2}checks passed/);
  const during = await cacertsOf(east.kubeconfig);
  expect([root.cert + next.cert, next.cert + root.cert]).toContain(during['root-cert.pem']);
  expect(during['cert-chain.pem']).toBe(during['ca-cert.pem'] + next.cert);
  const intermediate = new x509.X509Certificate(during['ca-cert.pem']);
  expect(
    await intermediate.verify({ publicKey: new x509.X509Certificate(next.cert).publicKey, signatureOnly: true }),
  ).toBe(true);
  expect(await rootCopies()).toHaveLength(2);
  const finished = await rotateMesh(env.client, 'sf', { what: 'root', finish: true });
  expect(finished.update).toMatchObject({ state: 'applied' });
  expect(finished.checks.filter((c) => c.status === 'failed')).toEqual([]);
  expect((await cacertsOf(east.kubeconfig))['root-cert.pem']).toBe(next.cert);
  const left = await rootCopies();
  expect(left).toHaveLength(1);
  expect(left).not.toEqual(oldCopy);
  expect((await secretKeys()).filter((k) => k.startsWith('east_')).sort()).toEqual([
    'east_ca.g3-cert.pem',
    'east_ca.g3-key.pem',
  ]);

  await teardownMesh(env.client, 'sf');
  const final = await meshHandle(env.client, 'sf').result();
  await recordHistory(meshHandle(env.client, 'sf'), 'v4-store-files-existing-cluster');
  expect([final.phase, final.leftBehind, final.ledger]).toEqual(['deleted', [], []]);
  await expect(core.readNamespacedSecret({ name: secretName('sf'), namespace: NAMESPACE })).rejects.toMatchObject({
    code: 404,
  });
  console.log(
    `existing-cluster mesh, files in the Kubernetes store: ready in ${Math.round(readyMs)} ms after up, ` +
      `deleted ${Math.round(performance.now() - started - readyMs)} ms later`,
  );

  const history = await historyText('mesh/sf');
  expect(history).toContain('"stored":"files/'); // the payloads were decoded, and the spec names entries
  expect(history).toContain(files.kubeconfig); // paths stay, for display
  expect(history).not.toMatch(/PRIVATE KEY|client-key-data|certificate-authority-data/);
  expect(history).not.toContain(marker);
  expect(history).not.toContain(root.key.split('\n')[1]);
  expect(history).not.toContain(next.key.split('\n')[1]);
  expect(history).toContain(nextFiles.certFile); // the new root's file, named for display
});

test('an API mesh with its root CA as PEM is ready under that root, which history never holds', async () => {
  const api: RunningApi = await startApi({
    client: env.client,
    namespace: 'default',
    tokens: [{ name: 'alice', token: 'alice-secret-0123456789' }],
    trustStore: store,
    host: '127.0.0.1',
    port: 0,
    log: () => undefined,
  });
  try {
    const root = await userRoot('Inline Root');
    const spec = {
      apiVersion: 'meshflow.dev/v1alpha1',
      kind: 'Mesh',
      name: 'inl',
      ttl: '1h',
      clusters: [{ name: 'c1', provider: 'local', network: 'n1' }],
      trust: { rootCa: { cert: root.cert, key: root.key } },
      app: { sample: 'none' },
    };
    const token = 'alice-secret-0123456789';
    const started = performance.now();
    const res = await call(api.port, 'POST', '/v1/meshes', {
      token,
      type: 'application/json',
      body: JSON.stringify(spec),
    });
    expect(res.status).toBe(202);
    const ready = await waitPhase(env.client, 'inl', ['ready', 'failed', 'deleted'], 240_000, 500);
    const readyMs = performance.now() - started;
    expect(ready.error).toBeUndefined();
    expect(ready.phase).toBe('ready');
    const local = new LocalClusters(state, { kubeApiserver: '', etcd: '' }).get('inl-c1')!;
    const cacerts = await cacertsOf(local.kubeconfig);
    expect(cacerts['root-cert.pem']).toBe(root.cert);
    expect(cacerts['cert-chain.pem'].endsWith(root.cert)).toBe(true);
    console.log(`API mesh with an inline PEM root: ready in ${Math.round(readyMs)} ms`);

    // The CLI names the token that started it.
    const listed = await until('inl listed', async () => {
      const out = (await cli('list')).out;
      return out.includes('inl') ? out : undefined;
    });
    expect(listed).toMatch(/inl .* created by alice/);
    expect((await cli('status', 'inl')).out).toContain('created by: alice (API token)');
    expect(JSON.parse((await cli('status', 'inl', '--json')).out).createdBy).toBe('alice');

    expect((await call(api.port, 'DELETE', '/v1/meshes/inl', { token })).status).toBe(202);
    expect((await meshHandle(env.client, 'inl').result()).phase).toBe('deleted');
    await recordHistory(meshHandle(env.client, 'inl'), 'v4-store-files-pem-root');
    const history = await historyText('mesh/inl');
    expect(history).toContain('"stored":"files/');
    expect(history).not.toMatch(/PRIVATE KEY/);
    expect(history).not.toContain(root.key.split('\n')[1]);

    // down after the end says so, with the phase it ended in.
    const down = await cli('down', 'inl');
    expect(down.code).toBe(0);
    expect(down.out).toMatch(
      /^mesh inl has already ended \(workflow mesh\/inl completed at \S+, phase deleted\): nothing to tear down\n$/,
    );
  } finally {
    await teardownMesh(env.client, 'inl').catch(() => undefined);
    await api.close();
  }
});
