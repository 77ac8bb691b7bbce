// meshflow gc against real API servers and the Temporal dev server. Mesh "gone" (its workflow
// terminated) left local cluster gone-c1, labelled objects in a cluster it shared with others, a
// CA directory and a daemon; mesh "alive" (workflow running) has the same kinds of things, and the
// shared cluster also holds objects without meshflow's labels. The Kubernetes trust store
// (MESHFLOW_TRUST_STORE, in a management cluster gc is not otherwise told of) holds the CA Secrets
// of gone, alive and never, beside Secrets that are not the store's. gc --dry-run lists and changes
// nothing; gc removes exactly what is gone's (and that of meshes Temporal never heard of), keeps a
// CRD that still holds a custom resource that is not gone's, and never touches the rest.
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { LocalProvider } from '../src/providers/local/runtime';
import { collectGarbage, type GcFinding, GcRefused, type GcResult, meshIsOpen } from '../src/gc';
import { type LocalCluster, LocalClusters } from '../src/local/clusters';
import type { ClusterSpec } from '../src/spec/schema';
import { runningPid, startDaemon, stopDaemon } from '../src/util/daemon';
import { freePort, sleep } from '../src/util/net';
import { sweepDaemons } from '../src/util/sweep';
import { TRUST_STORE_VAR } from '../src/trust-store/from-env';
import { scratchDir, tool } from './helpers/env';
import { devServer } from './helpers/temporal';

const cli = path.resolve(__dirname, '..', 'dist', 'cli', 'main.js');
const tools = async () => ({ kubeApiserver: tool('kube-apiserver'), etcd: tool('etcd') });
const spec = (name: string): ClusterSpec => ({ name, provider: 'local', network: 'network1', role: 'primary' });
const labels = (mesh: string) => ({ 'app.kubernetes.io/managed-by': 'meshflow', 'meshflow.dev/mesh': mesh });
const GROUP = 'gc.meshflow.dev';
const ANY = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
const TRUST_NS = 'meshflow-trust';

/** An object to create: "Kind", name, namespace (or none), labels. */
function obj(apiVersion: string, kind: string, name: string, namespace?: string, lbls?: Record<string, string>) {
  return { apiVersion, kind, metadata: { name, namespace, labels: lbls } } as k8s.KubernetesObject;
}

let env: TestWorkflowEnvironment;
let state: string;
let elsewhere: string;
let provider: LocalProvider;
let local: LocalClusters;
let others: LocalClusters;
let shared: LocalCluster;
/** The management cluster of the trust store; gc learns of it from MESHFLOW_TRUST_STORE only. */
let mgmt: LocalCluster;
let helperPidFile: string;

function kubeConfig(kubeconfig: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  return kc;
}

const objectsOf = (kubeconfig: string) => k8s.KubernetesObjectApi.makeApiClient(kubeConfig(kubeconfig));
const localKubeconfig = (name: string) => path.join(state, 'local', 'clusters', name, 'kubeconfig');

async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(200);
  }
}

function crd(plural: string, kind: string, mesh: string): k8s.KubernetesObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${GROUP}`, labels: labels(mesh) },
    spec: {
      group: GROUP,
      names: { kind, plural, singular: kind.toLowerCase() },
      scope: 'Namespaced',
      versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: ANY } }],
    } as object,
  } as k8s.KubernetesObject;
}

async function createAll(kubeconfig: string, objects: k8s.KubernetesObject[]): Promise<void> {
  const api = objectsOf(kubeconfig);
  const ext = kubeConfig(kubeconfig).makeApiClient(k8s.ApiextensionsV1Api);
  for (const o of objects) {
    if (o.kind === 'CustomResourceDefinition') {
      await api.create(o);
      await eventually(async () => {
        const c = await ext.readCustomResourceDefinition({ name: o.metadata!.name! });
        return c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True') || undefined;
      });
    } else {
      // Discovery may lag a just-established CRD for a moment.
      await eventually(() => api.create(o));
    }
  }
}

/** Whether the object exists, and whether it is being deleted (a namespace without a namespace controller stays so). */
async function stateOf(kubeconfig: string, apiVersion: string, kind: string, name: string, namespace?: string) {
  try {
    const o = await objectsOf(kubeconfig).read({ apiVersion, kind, metadata: { name, namespace } });
    return o.metadata?.deletionTimestamp ? 'terminating' : 'present';
  } catch (err) {
    // Gone, or its kind is (the client knows kinds from discovery).
    const gone = (err as { code?: number }).code === 404 || /not found|no matches|unrecognized api/i.test(String(err));
    if (gone) return 'absent';
    throw err;
  }
}

/** Everything the test made, and whether it is still there. */
async function world(): Promise<Record<string, string>> {
  const s = shared.kubeconfig;
  const exists = (p: string) => (fs.existsSync(path.join(state, p)) ? 'present' : 'absent');
  const pid = (file: string, marker: string) => (runningPid(file, marker) !== undefined ? 'running' : 'stopped');
  const gone = path.join(state, 'local', 'clusters', 'gone-c1');
  return {
    'shared Namespace gone-ns': await stateOf(s, 'v1', 'Namespace', 'gone-ns'),
    'shared Secret gone-ns/s1': await stateOf(s, 'v1', 'Secret', 's1', 'gone-ns'),
    'shared Secret default/gone-default': await stateOf(s, 'v1', 'Secret', 'gone-default', 'default'),
    'shared ClusterRole gone-role': await stateOf(s, 'rbac.authorization.k8s.io/v1', 'ClusterRole', 'gone-role'),
    'shared ConfigMap default/never-cm': await stateOf(s, 'v1', 'ConfigMap', 'never-cm', 'default'),
    'shared CRD widgets': await stateOf(s, 'apiextensions.k8s.io/v1', 'CustomResourceDefinition', `widgets.${GROUP}`),
    'shared Widget default/w-gone': await stateOf(s, `${GROUP}/v1`, 'Widget', 'w-gone', 'default'),
    'shared CRD gadgets': await stateOf(s, 'apiextensions.k8s.io/v1', 'CustomResourceDefinition', `gadgets.${GROUP}`),
    'shared Gadget default/g-gone': await stateOf(s, `${GROUP}/v1`, 'Gadget', 'g-gone', 'default'),
    'shared Gadget default/g-user': await stateOf(s, `${GROUP}/v1`, 'Gadget', 'g-user', 'default'),
    'shared Namespace plain': await stateOf(s, 'v1', 'Namespace', 'plain'),
    'shared Secret plain/user-secret': await stateOf(s, 'v1', 'Secret', 'user-secret', 'plain'),
    'shared ConfigMap plain/alive-cm': await stateOf(s, 'v1', 'ConfigMap', 'alive-cm', 'plain'),
    'shared ConfigMap default/half-labelled': await stateOf(s, 'v1', 'ConfigMap', 'half-labelled', 'default'),
    'shared Secret default/other-tool': await stateOf(s, 'v1', 'Secret', 'other-tool', 'default'),
    'alive-c1 Namespace alive-app': await stateOf(localKubeconfig('alive-c1'), 'v1', 'Namespace', 'alive-app'),
    'alive-c1 Secret default/stray': await stateOf(localKubeconfig('alive-c1'), 'v1', 'Secret', 'stray', 'default'),
    ...Object.fromEntries(
      await Promise.all(
        ['gone', 'alive', 'never', 'unlabelled', 'half', 'mislabelled', 'ca-of-gone'].map(async (n) => [
          `trust Secret meshflow-trust-${n}`,
          await stateOf(mgmt.kubeconfig, 'v1', 'Secret', `meshflow-trust-${n}`, TRUST_NS),
        ]),
      ),
    ),
    'local clusters': local
      .list()
      .map((c) => c.name)
      .sort()
      .join(','),
    'gone-c1 apiserver': pid(path.join(gone, 'apiserver.pid'), gone),
    'gone-c1 simulated data plane': pid(path.join(gone, 'simulated-data-plane.pid'), gone),
    'meshes/gone': exists('meshes/gone'),
    'meshes/gone helper': pid(helperPidFile, path.join(state, 'meshes', 'gone')),
    'meshes/alive/ca': exists('meshes/alive/ca'),
    'meshes/never': exists('meshes/never'),
    'meshes/keepme/ca': exists('meshes/keepme/ca'),
    'meshes/keepme/notes.txt': exists('meshes/keepme/notes.txt'),
  };
}

const short = (where: string) => (where.startsWith(state) ? path.relative(state, where) : where);
const row = (f: GcFinding) => [f.kind, short(f.where), f.mesh, ...(f.kind === 'process' ? [] : [f.what])].join(' | ');

/** The findings as "kind | where | mesh | what" -> action, processes by PID file (PIDs vary). */
function table(r: GcResult): Record<string, string> {
  return Object.fromEntries(r.findings.map((f) => [row(f), f.action]));
}

function expected(done: boolean): Record<string, string> {
  const del = done ? 'deleted' : 'would-delete';
  const stop = done ? 'stopped' : 'would-stop';
  return {
    'local-cluster | local/clusters/gone-c1 | gone | gone-c1': del,
    'process | local/clusters/gone-c1/apiserver.pid | gone': stop,
    'process | local/clusters/gone-c1/simulated-data-plane.pid | gone': stop,
    'local-cluster | local/clusters/alive-c1 | alive | alive-c1': 'kept',
    'local-cluster | local/clusters/old-mesh-c1 | old|old-mesh | old-mesh-c1': del,
    'local-cluster | local/clusters/alive-x-c1 | alive|alive-x | alive-x-c1': 'kept',
    'object | local alive-c1 | gone | Secret default/stray': del,
    'object | local alive-c1 | alive | 1 object(s)': 'kept',
    'object | shared | gone | Namespace gone-ns': del,
    'object | shared | gone | Secret gone-ns/s1': del,
    'object | shared | gone | Secret default/gone-default': del,
    'object | shared | gone | ClusterRole gone-role': del,
    'object | shared | never | ConfigMap default/never-cm': del,
    [`object | shared | gone | CustomResourceDefinition widgets.${GROUP}`]: del,
    'object | shared | gone | Widget default/w-gone': del,
    [`object | shared | gone | CustomResourceDefinition gadgets.${GROUP}`]: 'kept',
    'object | shared | gone | Gadget default/g-gone': del,
    'object | shared | alive | 1 object(s)': 'kept',
    [`trust-secret | mgmt | gone | Secret ${TRUST_NS}/meshflow-trust-gone`]: del,
    [`trust-secret | mgmt | never | Secret ${TRUST_NS}/meshflow-trust-never`]: del,
    [`trust-secret | mgmt | alive | Secret ${TRUST_NS}/meshflow-trust-alive`]: 'kept',
    'ca-dir | meshes/gone/ca | gone | mesh CA keys and certificates': del,
    'process | meshes/gone/helper.pid | gone': stop,
    'mesh-dir | meshes/gone | gone | mesh directory': del,
    'ca-dir | meshes/alive/ca | alive | mesh CA keys and certificates': 'kept',
    'mesh-dir | meshes/never | never | mesh directory': del,
    'ca-dir | meshes/keepme/ca | keepme | mesh CA keys and certificates': del,
    'mesh-dir | meshes/keepme | keepme | mesh directory': 'kept',
  };
}

const reasonOf = (r: GcResult, what: string) => r.findings.find((f) => f.what === what)?.reason;

beforeAll(async () => {
  state = scratchDir('gc');
  elsewhere = scratchDir('gc-existing');
  provider = new LocalProvider(state, await tools());
  local = new LocalClusters(state, await tools());
  others = new LocalClusters(elsewhere, await tools());
  const started = Date.now();
  [env, [shared, mgmt]] = await Promise.all([
    devServer(),
    others.start(['shared', 'mgmt']),
    // As the mesh workflows made them: named <mesh>-<cluster>, with the simulated data plane beside each.
    provider.create('gone', spec('c1'), { heartbeat: () => undefined }),
    provider.create('alive', spec('c1'), { heartbeat: () => undefined }),
  ]);
  process.stderr.write(`[gc.test] dev server + 4 API servers ready in ${Date.now() - started} ms\n`);

  // Temporal: alive's workflow is running (no worker needs to pick it up), gone's was terminated,
  // and no other mesh ever had one.
  const start = (mesh: string) =>
    env.client.workflow.start('provisionMesh', { workflowId: `mesh/${mesh}`, taskQueue: 'gc-test-nobody', args: [] });
  await start('alive');
  await (await start('gone')).terminate('gone for the gc test');

  const gone = labels('gone');
  await createAll(shared.kubeconfig, [
    obj('v1', 'Namespace', 'gone-ns', undefined, gone),
    obj('v1', 'Secret', 's1', 'gone-ns', gone),
    obj('v1', 'Secret', 'gone-default', 'default', gone),
    obj('rbac.authorization.k8s.io/v1', 'ClusterRole', 'gone-role', undefined, gone),
    obj('v1', 'ConfigMap', 'never-cm', 'default', labels('never')),
    crd('widgets', 'Widget', 'gone'),
    obj(`${GROUP}/v1`, 'Widget', 'w-gone', 'default', gone),
    crd('gadgets', 'Gadget', 'gone'),
    obj(`${GROUP}/v1`, 'Gadget', 'g-gone', 'default', gone),
    obj(`${GROUP}/v1`, 'Gadget', 'g-user', 'default'),
    // Not meshflow's (no labels, or not both), and the open mesh's.
    obj('v1', 'Namespace', 'plain'),
    obj('v1', 'Secret', 'user-secret', 'plain'),
    obj('v1', 'ConfigMap', 'alive-cm', 'plain', labels('alive')),
    obj('v1', 'ConfigMap', 'half-labelled', 'default', { 'app.kubernetes.io/managed-by': 'meshflow' }),
    obj('v1', 'Secret', 'other-tool', 'default', { ...gone, 'app.kubernetes.io/managed-by': 'helm' }),
  ]);
  // The trust store: a mesh's Secret as the store writes it (name, labels, entries), and Secrets that are not the
  // store's: no labels, not both, another tool's, a name that is not the labelled mesh's.
  const trustSecret = (name: string, lbls?: Record<string, string>) => ({
    ...obj('v1', 'Secret', name, TRUST_NS, lbls),
    type: 'Opaque',
    data: { 'root-key.pem': 'a2V5', 'root-cert.pem': 'Y2VydA==', 'east_ca-key.pem': 'a2V5' },
  });
  await createAll(mgmt.kubeconfig, [
    obj('v1', 'Namespace', TRUST_NS),
    ...['gone', 'alive', 'never'].map((m) => trustSecret(`meshflow-trust-${m}`, labels(m))),
    trustSecret('meshflow-trust-unlabelled'),
    trustSecret('meshflow-trust-half', { 'app.kubernetes.io/managed-by': 'meshflow' }),
    trustSecret('meshflow-trust-mislabelled', { ...gone, 'app.kubernetes.io/managed-by': 'helm' }),
    trustSecret('meshflow-trust-ca-of-gone', gone),
  ]);
  await createAll(localKubeconfig('gone-c1'), [obj('v1', 'Namespace', 'gone-app', undefined, gone)]);
  await createAll(localKubeconfig('alive-c1'), [
    obj('v1', 'Namespace', 'alive-app', undefined, labels('alive')),
    obj('v1', 'Secret', 'stray', 'default', gone),
  ]);

  // Local clusters an older meshflow made (no owner record), stopped: "old-mesh-c1" belongs to
  // mesh old or old-mesh, neither open; "alive-x-c1" may be alive's.
  for (const [i, name] of ['old-mesh-c1', 'alive-x-c1'].entries()) {
    fs.mkdirSync(path.join(state, 'local', 'clusters', name), { recursive: true });
    const record = { name, index: 50 + i, port: await freePort() };
    fs.writeFileSync(path.join(state, 'local', 'clusters', name, 'cluster.json'), JSON.stringify(record));
  }

  // Mesh directories: CAs, a daemon of gone's, an empty one, one with a file gc does not know.
  const meshDir = (mesh: string) => path.join(state, 'meshes', mesh);
  for (const mesh of ['gone', 'alive', 'keepme']) {
    fs.mkdirSync(path.join(meshDir(mesh), 'ca'), { recursive: true });
    fs.writeFileSync(path.join(meshDir(mesh), 'ca', 'root-cert.pem'), 'not really a certificate\n');
  }
  fs.writeFileSync(path.join(meshDir('gone'), 'ca', 'root-key.pem'), 'not really a key\n');
  fs.mkdirSync(meshDir('never'));
  fs.writeFileSync(path.join(meshDir('keepme'), 'notes.txt'), 'mine\n');
  helperPidFile = path.join(meshDir('gone'), 'helper.pid');
  const args = ['-e', 'setInterval(() => {}, 1000)', meshDir('gone')];
  startDaemon({ file: process.execPath, args, pidFile: helperPidFile, marker: meshDir('gone') });
}, 240_000);

afterAll(async () => {
  if (helperPidFile) await stopDaemon(helperPidFile, path.join(state, 'meshes', 'gone'));
  // Whatever gc left (everything, if it failed): the providers' own delete, then the rest.
  if (provider) for (const mesh of ['alive', 'gone']) await provider.delete(mesh, spec('c1'));
  if (local) await local.delete(local.list().map((c) => c.name));
  await others?.delete(['shared', 'mgmt']);
  await env?.teardown();
  for (const dir of [state, elsewhere]) if (dir && fs.existsSync(dir)) await sweepDaemons(dir);
}, 120_000);

const trustStore = () => ({ kubeconfig: mgmt.kubeconfig, namespace: TRUST_NS });
const gc = (dryRun: boolean, isOpen = meshIsOpen(env.client)) =>
  collectGarbage({
    stateDir: state,
    clusters: [{ kubeconfig: shared.kubeconfig }],
    trustStore: trustStore(),
    isOpen,
    dryRun,
    localTools: tools,
  });
/** The command's environment: Temporal, the state directory and the trust store, as the workers have them. */
const cmdEnv = () => ({
  ...process.env,
  MESHFLOW_STATE_DIR: state,
  TEMPORAL_ADDRESS: env.address,
  TEMPORAL_NAMESPACE: 'default',
  [TRUST_STORE_VAR]: `kubernetes:${mgmt.kubeconfig}/${TRUST_NS}`,
});

test('without an answer from Temporal, gc refuses and changes nothing', async () => {
  const before = await world();
  const unreachable = async () => Promise.reject(new Error('14 UNAVAILABLE: connection refused'));
  await expect(gc(false, unreachable)).rejects.toThrow(GcRefused);
  await expect(gc(false, unreachable)).rejects.toThrow(/\(14 UNAVAILABLE: connection refused\); gc changed nothing/);
  expect(await world()).toEqual(before);

  // The command says so too, and exits 1.
  const port = await freePort();
  const r = await execa(process.execPath, [cli, 'gc'], {
    reject: false,
    env: { ...process.env, MESHFLOW_STATE_DIR: state, TEMPORAL_ADDRESS: `127.0.0.1:${port}` },
  });
  expect(r.exitCode).toBe(1);
  expect(r.stderr).toContain(`no Temporal server answers at 127.0.0.1:${port}`);
  expect(r.stderr).toContain('changed nothing');
  expect(await world()).toEqual(before);
});

test('gc --dry-run lists what is garbage and what is kept, and changes nothing', async () => {
  const before = await world();
  expect(before).toMatchObject({
    'local clusters': 'alive-c1,alive-x-c1,gone-c1,old-mesh-c1',
    'gone-c1 apiserver': 'running',
    'gone-c1 simulated data plane': 'running',
    'meshes/gone helper': 'running',
  });
  const t0 = Date.now();
  const r = await gc(true);
  process.stderr.write(`[gc.test] dry run: ${Date.now() - t0} ms\n`);
  expect(r.errors).toEqual([]);
  expect(table(r)).toEqual(expected(false));
  expect(r.meshes).toEqual(
    ['alive', 'alive-x', 'gone', 'keepme', 'never', 'old', 'old-mesh'].map((m) => ({ mesh: m, open: m === 'alive' })),
  );
  expect(reasonOf(r, `Secret ${TRUST_NS}/meshflow-trust-gone`)).toBe('mesh CA keys and certificates (3 entries)');
  expect(reasonOf(r, `CustomResourceDefinition gadgets.${GROUP}`)).toBe(
    `holds 1 custom resource(s) without mesh gone's labels, e.g. gadgets.${GROUP} default/g-user`,
  );
  expect(reasonOf(r, 'alive-x-c1')).toBe('owner not recorded; may be open mesh alive');
  expect(reasonOf(r, 'old-mesh-c1')).toMatch(/owner not recorded: one of old, old-mesh, none open/);
  expect(reasonOf(r, 'gone-c1')).toMatch(/1 labelled object\(s\) go with it/);
  const meshes = '(6 mesh(es) without an open workflow, 1 with one)';
  expect(r.summary).toBe(`dry run: would delete 17, would stop 3, kept 8 ${meshes}`);
  expect(await world()).toEqual(before);

  // The command, against the same Temporal: the same findings, as JSON; still nothing changed.
  const cmd = await execa(process.execPath, [cli, 'gc', '--dry-run', '--json', '--kubeconfig', shared.kubeconfig], {
    reject: false,
    env: cmdEnv(),
  });
  expect(cmd.stderr).not.toMatch(/error/i);
  expect(cmd.exitCode).toBe(0);
  expect(table(JSON.parse(cmd.stdout) as GcResult)).toEqual(expected(false));
  const text = await execa(process.execPath, [cli, 'gc', '--dry-run', '--kubeconfig', shared.kubeconfig], {
    env: cmdEnv(),
  });
  expect(text.stdout).toMatch(/^KIND +WHERE +MESH +WHAT +ACTION +REASON$/m);
  expect(text.stdout).toMatch(/^local-cluster +<state>\/local\/clusters\/gone-c1 +gone +gone-c1 +would-delete/m);
  expect(text.stdout).toMatch(/^trust-secret +mgmt +gone +Secret meshflow-trust\/meshflow-trust-gone +would-delete/m);
  expect(text.stdout.trimEnd().split('\n').pop()).toBe(r.summary);

  // The management cluster named with --kubeconfig as well: each trust Secret is listed once, as the store's.
  const both = await collectGarbage({
    stateDir: state,
    clusters: [{ kubeconfig: shared.kubeconfig }, { kubeconfig: mgmt.kubeconfig }],
    trustStore: trustStore(),
    isOpen: meshIsOpen(env.client),
    dryRun: true,
    localTools: tools,
  });
  const inMgmt = both.findings.filter((f) => f.where === 'mgmt').map(row);
  expect(inMgmt.sort()).toEqual(
    [
      'object | mgmt | gone | Secret meshflow-trust/meshflow-trust-ca-of-gone',
      ...Object.keys(expected(false)).filter((k) => k.startsWith('trust-secret')),
    ].sort(),
  );

  // MESHFLOW_TRUST_STORE of the wrong form stops the command before it asks anything; a store it cannot search
  // is an error, as a named cluster is: exit 1, the rest searched.
  const gcWith = (value: string) =>
    execa(process.execPath, [cli, 'gc', '--dry-run', '--json'], {
      reject: false,
      env: { ...cmdEnv(), [TRUST_STORE_VAR]: value },
    });
  const form = await gcWith(`kubernetes:${mgmt.kubeconfig}/Trust_NS`);
  expect(form.exitCode).toBe(1);
  expect(form.stderr).toContain('MESHFLOW_TRUST_STORE: namespace "Trust_NS" is not a Kubernetes namespace name');
  expect(form.stdout).toBe('');
  const nope = await gcWith(`kubernetes:${mgmt.kubeconfig}#nope/${TRUST_NS}`);
  expect(nope.exitCode).toBe(1);
  const unsearched = JSON.parse(nope.stdout) as GcResult;
  expect(unsearched.errors).toEqual([
    `trust store (namespace ${TRUST_NS} of ${mgmt.kubeconfig}) was not searched: ` +
      `MESHFLOW_TRUST_STORE: context "nope" is not in kubeconfig ${mgmt.kubeconfig} (it has: mgmt)`,
  ]);
  expect(unsearched.findings.filter((f) => f.kind === 'trust-secret')).toEqual([]);
  expect(unsearched.summary).toMatch(/; 1 cluster\(s\) could not be searched$/);
  expect(await world()).toEqual(before);
});

test('gc removes what the closed and unknown meshes left, and nothing else', async () => {
  const t0 = Date.now();
  const r = await gc(false);
  process.stderr.write(`[gc.test] gc: ${Date.now() - t0} ms\n`);
  expect(r.findings.filter((f) => f.action === 'failed')).toEqual([]);
  expect(table(r)).toEqual(expected(true));
  expect(r.summary).toBe('deleted 17, stopped 3, kept 8 (6 mesh(es) without an open workflow, 1 with one)');

  // A CRD's deletion finishes when the API server has removed its custom resources.
  const widgets = () =>
    stateOf(shared.kubeconfig, 'apiextensions.k8s.io/v1', 'CustomResourceDefinition', `widgets.${GROUP}`);
  await eventually(async () => ((await widgets()) === 'absent' ? true : undefined));
  const after = await world();
  expect(after).toEqual({
    // No namespace controller runs on a local cluster: a deleted namespace stays terminating.
    'shared Namespace gone-ns': expect.stringMatching(/^(absent|terminating)$/),
    'shared Secret gone-ns/s1': 'absent',
    'shared Secret default/gone-default': 'absent',
    'shared ClusterRole gone-role': 'absent',
    'shared ConfigMap default/never-cm': 'absent',
    'shared CRD widgets': 'absent',
    'shared Widget default/w-gone': 'absent',
    'shared CRD gadgets': 'present',
    'shared Gadget default/g-gone': 'absent',
    'shared Gadget default/g-user': 'present',
    'shared Namespace plain': 'present',
    'shared Secret plain/user-secret': 'present',
    'shared ConfigMap plain/alive-cm': 'present',
    'shared ConfigMap default/half-labelled': 'present',
    'shared Secret default/other-tool': 'present',
    'alive-c1 Namespace alive-app': 'present',
    'alive-c1 Secret default/stray': 'absent',
    'trust Secret meshflow-trust-gone': 'absent',
    'trust Secret meshflow-trust-never': 'absent',
    'trust Secret meshflow-trust-alive': 'present',
    'trust Secret meshflow-trust-unlabelled': 'present',
    'trust Secret meshflow-trust-half': 'present',
    'trust Secret meshflow-trust-mislabelled': 'present',
    'trust Secret meshflow-trust-ca-of-gone': 'present',
    'local clusters': 'alive-c1,alive-x-c1',
    'gone-c1 apiserver': 'stopped',
    'gone-c1 simulated data plane': 'stopped',
    'meshes/gone': 'absent',
    'meshes/gone helper': 'stopped',
    'meshes/alive/ca': 'present',
    'meshes/never': 'absent',
    'meshes/keepme/ca': 'absent',
    'meshes/keepme/notes.txt': 'present',
  });
  expect(fs.existsSync(path.join(state, 'local', 'clusters', 'gone-c1'))).toBe(false);
  expect(fs.existsSync(path.join(state, 'local', 'clusters', 'old-mesh-c1'))).toBe(false);

  // Again: nothing left to do but what is kept (and a namespace still terminating).
  const again = await gc(false);
  expect(again.findings.filter((f) => f.action !== 'kept' && f.action !== 'terminating')).toEqual([]);
  expect(again.findings.find((f) => f.what === `CustomResourceDefinition gadgets.${GROUP}`)?.action).toBe('kept');
  expect(await world()).toEqual(after);
});
