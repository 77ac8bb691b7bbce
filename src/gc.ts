// `meshflow gc`: finds what meshflow left behind for meshes that have no open workflow, and
// removes it. Five kinds of leftovers: Kubernetes objects carrying meshflow's ownership labels (in
// every local cluster and in the clusters named on the command line), local clusters made for a
// mesh, CA directories under <stateDir>/meshes, daemons whose PID files live there, and the
// Secrets of the Kubernetes trust store (MESHFLOW_TRUST_STORE), one per mesh. Whether a
// mesh is open is asked (isOpen is injected: the CLI asks Temporal) for every mesh before anything
// is done; an error there stops gc before it changes anything. Nothing without meshflow's labels
// or ownership record is touched.
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { SharedTlsKubeConfig } from './adapters/kube-config';
import { Client } from '@temporalio/client';
import { openRunsOf } from './client';
import { Kube, MANAGED_BY, MESH_LABEL } from './adapters/kube';
import { LocalProvider } from './adapters/providers';
import { GKE_CLUSTER_LABEL, GKE_MANAGED_BY, GKE_MESH_LABEL, GkeProvider } from './adapters/gke';
import { caDir } from './istio/trust';
import { type KubernetesStoreLocation, kubernetesTrustStore } from './trust-store/from-env';
import { secretName } from './trust-store/kubernetes';
import { LocalClusters, type LocalTools } from './local/clusters';
import type { ClusterSpec } from './spec/schema';
import { connectTo, temporalTarget } from './temporal/connection';
import { connectionOptions } from './temporal/connection-options';
import { dataConverter } from './temporal/codec';
import { ensureTools } from './tools/install';
import { logFileOf, runningPid, stopDaemon, stopDaemons } from './util/daemon';
import { type Progress, silent } from './util/progress';

/** Written by LocalProvider.create into each local cluster's directory: {"mesh", "cluster"}. */
const OWNER_FILE = 'owner.json';
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** meshflow's objects: both labels (the mesh label with any value). */
const SELECTOR = `${MANAGED_BY}=meshflow,${MESH_LABEL}`;
const PARALLEL = 8;

/** A cluster to search besides the local ones: a kubeconfig and one of its contexts (default: current). */
export interface GcCluster {
  kubeconfig: string;
  context?: string;
}

export type GcKind =
  'object' | 'local-cluster' | 'ca-dir' | 'trust-secret' | 'mesh-dir' | 'process' | 'gke-cluster' | 'firewall-rule';
export type GcAction = 'would-delete' | 'deleted' | 'would-stop' | 'stopped' | 'kept' | 'terminating' | 'failed';

export interface GcFinding {
  kind: GcKind;
  /** The cluster (objects, trust Secrets), the directory (local clusters, CA and mesh directories) or the PID file. */
  where: string;
  /** The owning mesh; "a|a-b" for an old local cluster whose owner was not recorded and its name allows either. */
  mesh: string;
  /** "Secret ns/name", a local cluster's name, "pid 123", what a directory holds. */
  what: string;
  action: GcAction;
  reason?: string;
}

export interface GcOptions {
  stateDir: string;
  /** Clusters to search besides the local clusters under stateDir (`--kubeconfig FILE [--context C]`). */
  clusters?: GcCluster[];
  /** Whether the mesh's workflow is open. Throwing (Temporal unreachable) stops gc before it changes anything. */
  isOpen: (mesh: string) => Promise<boolean>;
  dryRun?: boolean;
  progress?: Progress;
  /** The Kubernetes trust store (MESHFLOW_TRUST_STORE): its Secrets `meshflow-trust-<mesh>` are searched too. */
  trustStore?: KubernetesStoreLocation;
  /** GKE projects to search for labelled clusters and firewall rules (`--provider gke --project P`). */
  gke?: { projects: string[]; provider: GkeProvider };
  /** kube-apiserver and etcd, needed only to delete a local cluster (default: the pinned tools, built if missing). */
  localTools?: () => Promise<LocalTools>;
}

export interface GcResult {
  dryRun: boolean;
  stateDir: string;
  findings: GcFinding[];
  /** Every mesh gc found a trace of, and whether its workflow is open. */
  meshes: Array<{ mesh: string; open: boolean }>;
  /** What could not be searched without failing gc (a stopped local cluster, an API group that did not answer). */
  warnings: string[];
  /** Clusters named by the caller (and the trust store's) that could not be searched. */
  errors: string[];
  summary: string;
}

/** gc did nothing because it could not be sure which meshes are open. */
export class GcRefused extends Error {
  override name = 'GcRefused';
}

// ---------------------------------------------------------------------------------------------
// Kubernetes: discovery, labelled lists, deletes of exactly the object that was found.

interface ApiResource {
  groupVersion: string;
  /** Plural resource name, e.g. "secrets". */
  name: string;
  kind: string;
  namespaced: boolean;
}

interface KubeItem {
  metadata: {
    name: string;
    namespace?: string;
    uid: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
    finalizers?: string[];
  };
  /** A Secret's entries: only their names are read (to count them), never their values. */
  data?: Record<string, string>;
  spec?: {
    group?: string;
    names?: { plural?: string };
    versions?: Array<{ name: string; served?: boolean }>;
    finalizers?: string[];
  };
}

interface Found {
  res: ApiResource;
  item: KubeItem;
  mesh: string;
}

const SECRETS: ApiResource = { groupVersion: 'v1', name: 'secrets', kind: 'Secret', namespaced: true };

const groupPath = (gv: string) => (gv.includes('/') ? `/apis/${gv}` : `/api/${gv}`);
const collectionPath = (r: ApiResource) => `${groupPath(r.groupVersion)}/${r.name}`;
const isNamespace = (r: ApiResource) => r.groupVersion === 'v1' && r.name === 'namespaces';
const isCrd = (r: ApiResource) =>
  r.groupVersion.startsWith('apiextensions.k8s.io/') && r.name === 'customresourcedefinitions';
const isWebhook = (r: ApiResource) => r.groupVersion.startsWith('admissionregistration.k8s.io/');
const codeOf = (err: unknown) => (err as { code?: number }).code;
const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));
const ownedBy = (labels: Record<string, string> | undefined, mesh: string) =>
  labels?.[MANAGED_BY] === 'meshflow' && labels?.[MESH_LABEL] === mesh;
const describeItem = (kind: string, m: KubeItem['metadata']) =>
  `${kind} ${m.namespace ? `${m.namespace}/` : ''}${m.name}`;

function objectPath(r: ApiResource, m: KubeItem['metadata']): string {
  const ns = r.namespaced ? `/namespaces/${encodeURIComponent(m.namespace ?? '')}` : '';
  return `${groupPath(r.groupVersion)}${ns}/${r.name}/${encodeURIComponent(m.name)}`;
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += limit) out.push(...(await Promise.all(items.slice(i, i + limit).map(fn))));
  return out;
}

class ClusterApi {
  private constructor(
    readonly label: string,
    private readonly config: k8s.KubeConfig,
  ) {}

  static open(label: string | undefined, kubeconfig: string, context?: string): ClusterApi {
    const kc = new SharedTlsKubeConfig();
    kc.loadFromFile(kubeconfig);
    if (context) {
      if (!kc.getContextObject(context)) throw new Error(`no context "${context}" in ${kubeconfig}`);
      kc.setCurrentContext(context);
    }
    if (!kc.getCurrentCluster()) {
      throw new Error(`${kubeconfig} names no cluster${context ? ` for context ${context}` : ''}`);
    }
    return new ClusterApi(label ?? (kc.getCurrentContext() || kubeconfig), kc);
  }

  get server(): string {
    return this.config.getCurrentCluster()!.server;
  }

  /** One API call; transient answers are retried as in every meshflow call (Kube.requestJson). */
  request<T>(method: string, urlPath: string, body?: unknown): Promise<T> {
    return new Kube(this.config).requestJson<T>(method, urlPath, body);
  }

  /** Every resource type that can be listed and deleted, one version per group (the preferred one). */
  async resources(warn: (line: string) => void): Promise<ApiResource[]> {
    type Group = { preferredVersion?: { groupVersion: string }; versions: Array<{ groupVersion: string }> };
    type ResourceList = { resources: Array<{ name: string; kind: string; namespaced: boolean; verbs?: string[] }> };
    const core = await this.request<{ versions: string[] }>('GET', '/api');
    const groups = await this.request<{ groups: Group[] }>('GET', '/apis');
    const preferred = groups.groups.map((g) => g.preferredVersion?.groupVersion ?? g.versions[0].groupVersion);
    const gvs = [...core.versions.slice(0, 1), ...preferred];
    const lists = await mapLimit(gvs, PARALLEL, async (gv) => {
      try {
        const list = await this.request<ResourceList>('GET', groupPath(gv));
        return list.resources
          .filter((r) => !r.name.includes('/') && r.verbs?.includes('list') && r.verbs.includes('delete'))
          .map((r) => ({ groupVersion: gv, name: r.name, kind: r.kind, namespaced: r.namespaced }));
      } catch (err) {
        warn(`${this.label}: API ${gv} was not searched: ${messageOf(err)}`);
        return [];
      }
    });
    return lists.flat();
  }

  async list(collection: string, labelSelector?: string): Promise<KubeItem[]> {
    const items: KubeItem[] = [];
    let next = '';
    do {
      const q = new URLSearchParams({ limit: '500' });
      if (labelSelector) q.set('labelSelector', labelSelector);
      if (next) q.set('continue', next);
      type Page = { items: KubeItem[] | null; metadata?: { continue?: string } };
      const page = await this.request<Page>('GET', `${collection}?${q}`);
      items.push(...(page.items ?? []));
      next = page.metadata?.continue ?? '';
    } while (next);
    return items;
  }

  /** meshflow's objects in this cluster, each once (a kind served by two groups is listed twice). */
  async scan(warn: (line: string) => void): Promise<Found[]> {
    const resources = await this.resources(warn);
    const seen = new Set<string>();
    const found: Found[] = [];
    await mapLimit(resources, PARALLEL, async (res) => {
      let items: KubeItem[];
      try {
        items = await this.list(collectionPath(res), SELECTOR);
      } catch (err) {
        warn(`${this.label}: ${res.name}.${res.groupVersion} was not searched: ${messageOf(err)}`);
        return;
      }
      for (const item of items) {
        const mesh = item.metadata.labels?.[MESH_LABEL];
        if (!mesh || seen.has(item.metadata.uid)) continue;
        seen.add(item.metadata.uid);
        found.push({ res, item, mesh });
      }
    });
    return found;
  }

  /**
   * Deletes exactly the object that was found: same UID, unchanged since (preconditions). When it
   * changed, it is read again and deleted only if it still carries the mesh's labels.
   */
  async deleteFound(f: Found): Promise<{ action: GcAction; reason?: string }> {
    const p = objectPath(f.res, f.item.metadata);
    const del = (m: KubeItem['metadata']) =>
      this.request('DELETE', p, {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        propagationPolicy: 'Background',
        preconditions: { uid: m.uid, resourceVersion: m.resourceVersion },
      });
    try {
      await del(f.item.metadata);
      return { action: 'deleted' };
    } catch (err) {
      if (codeOf(err) === 404) return { action: 'deleted', reason: 'already gone' };
      if (codeOf(err) !== 409) throw err;
    }
    let now: KubeItem;
    try {
      now = await this.request<KubeItem>('GET', p);
    } catch (err) {
      if (codeOf(err) === 404) return { action: 'deleted', reason: 'already gone' };
      throw err;
    }
    if (now.metadata.uid !== f.item.metadata.uid || !ownedBy(now.metadata.labels, f.mesh)) {
      return { action: 'kept', reason: `changed while gc ran: no longer mesh ${f.mesh}'s` };
    }
    try {
      await del(now.metadata);
    } catch (err) {
      if (codeOf(err) !== 404) throw err;
    }
    return { action: 'deleted' };
  }

  /** The custom resources of a CRD (every namespace) that lack this mesh's labels. */
  async foreignCustomResources(crd: KubeItem, mesh: string): Promise<string[]> {
    const { group, names, versions } = crd.spec ?? {};
    const version = versions?.find((v) => v.served)?.name;
    if (!group || !names?.plural || !version) {
      throw new Error('it serves no version, so its custom resources cannot be checked');
    }
    const kind = `${names.plural}.${group}`;
    return (await this.list(`/apis/${group}/${version}/${names.plural}`))
      .filter((o) => !ownedBy(o.metadata.labels, mesh))
      .map((o) => describeItem(kind, o.metadata));
  }
}

// ---------------------------------------------------------------------------------------------
// The state directory: local clusters and their owners, mesh directories.

interface LocalEntry {
  name: string;
  dir: string;
  kubeconfig: string;
  running: boolean;
  /** The mesh that owns it; several when its owner was not recorded and its name splits more than one way. */
  owners: string[];
  recorded: boolean;
}

/**
 * Whose local cluster this is. LocalProvider names clusters "<mesh>-<cluster>" and records the
 * owner in owner.json; a cluster made before that record existed is owned by one of the meshes
 * its name can start with (both parts DNS labels). None: not a mesh's cluster, never deleted.
 */
export function localClusterOwners(name: string, dir: string): { owners: string[]; recorded: boolean } {
  try {
    const o = JSON.parse(fs.readFileSync(path.join(dir, OWNER_FILE), 'utf8')) as { mesh?: unknown };
    if (typeof o.mesh === 'string' && DNS_LABEL.test(o.mesh) && name.startsWith(`${o.mesh}-`)) {
      return { owners: [o.mesh], recorded: true };
    }
  } catch {
    // no record (an older meshflow made it): the name has to do
  }
  const owners: string[] = [];
  for (let i = name.indexOf('-'); i > 0; i = name.indexOf('-', i + 1)) {
    if (DNS_LABEL.test(name.slice(0, i)) && DNS_LABEL.test(name.slice(i + 1))) owners.push(name.slice(0, i));
  }
  return { owners, recorded: false };
}

function localEntries(stateDir: string): LocalEntry[] {
  // list() reads the cluster records only; the tools are needed to start or delete clusters.
  const clusters = new LocalClusters(stateDir, { kubeApiserver: '', etcd: '' }).list();
  return clusters.map((c) => {
    const dir = path.dirname(c.kubeconfig);
    return { name: c.name, dir, kubeconfig: c.kubeconfig, running: c.running, ...localClusterOwners(c.name, dir) };
  });
}

/** Files under `dir` (relative), directories ending in "/" when empty. */
function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  const entries = fs.readdirSync(path.join(dir, rel), { withFileTypes: true });
  if (entries.length === 0 && rel) return [`${rel}/`];
  for (const e of entries) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...walk(dir, p));
    else out.push(p);
  }
  return out;
}

function lockHolder(lockDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(lockDir, 'pid'), 'utf8'));
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? -1 : undefined;
  }
}

/** What a garbage mesh directory holds: running daemons, held locks, and files gc does not know. */
function inspectMeshDir(dir: string) {
  const files = walk(dir);
  const lockDirs = [...new Set(files.map((f) => /^(.*\.lock)\//.exec(f)?.[1]).filter((l): l is string => Boolean(l)))];
  const held = lockDirs
    .map((l) => ({ lock: l, pid: lockHolder(path.join(dir, l)) }))
    .filter((l) => l.pid !== undefined);
  const daemons = files
    .filter((f) => f.endsWith('.pid'))
    .map((f) => ({ pidFile: path.join(dir, f), pid: runningPid(path.join(dir, f), dir) }))
    .filter((d): d is { pidFile: string; pid: number } => d.pid !== undefined);
  const known = (f: string) =>
    f === 'ca' ||
    f.startsWith('ca/') ||
    f.endsWith('.pid') ||
    f.endsWith('.log') ||
    lockDirs.some((l) => f.startsWith(`${l}/`));
  return { held, daemons, others: files.filter((f) => !known(f)) };
}

// ---------------------------------------------------------------------------------------------
// The collector.

interface Planned {
  finding: GcFinding;
  /** Runs after everything of a lower stage (kube objects by phase, then clusters, then files). */
  stage: number;
  run?: () => Promise<{ action: GcAction; reason?: string } | void>;
}

const STAGE = {
  webhooks: 0,
  namespaced: 1,
  clusterScoped: 2,
  namespaces: 3,
  crds: 4,
  localClusters: 10,
  firewalls: 11,
  gkeClusters: 12,
  daemons: 20,
  caDirs: 21,
  trustSecrets: 21,
  meshDirs: 22,
};

async function askOpen(meshes: string[], isOpen: (mesh: string) => Promise<boolean>): Promise<Map<string, boolean>> {
  const open = new Map<string, boolean>();
  await mapLimit(meshes, PARALLEL, async (mesh) => {
    try {
      open.set(mesh, await isOpen(mesh));
    } catch (err) {
      const why = messageOf(err);
      throw new GcRefused(`cannot tell whether mesh ${mesh} has an open workflow (${why}); gc changed nothing`);
    }
  });
  return open;
}

export async function collectGarbage(opts: GcOptions): Promise<GcResult> {
  const progress = opts.progress ?? silent;
  const dryRun = opts.dryRun ?? false;
  const stateDir = path.resolve(opts.stateDir);
  const warnings: string[] = [];
  const errors: string[] = [];
  const warn = (line: string) => {
    warnings.push(line);
    progress(`warning: ${line}`);
  };

  // 1. What exists: local clusters, mesh directories, meshflow's objects in every cluster gc can reach.
  const locals = localEntries(stateDir);
  const meshesDir = path.join(stateDir, 'meshes');
  const meshDirs = fs.existsSync(meshesDir)
    ? fs
        .readdirSync(meshesDir, { withFileTypes: true })
        .filter((e) => e.isDirectory() && DNS_LABEL.test(e.name))
        .map((e) => e.name)
    : [];
  const targets: Array<{ api: ClusterApi; local?: LocalEntry }> = [];
  for (const c of locals) {
    if (!c.running) continue;
    try {
      targets.push({ api: ClusterApi.open(`local ${c.name}`, c.kubeconfig), local: c });
    } catch (err) {
      warn(`local cluster ${c.name} was not searched: ${messageOf(err)}`);
    }
  }
  for (const c of opts.clusters ?? []) {
    try {
      const api = ClusterApi.open(undefined, c.kubeconfig, c.context);
      if (!targets.some((t) => t.api.server === api.server)) targets.push({ api });
    } catch (err) {
      errors.push(`${c.kubeconfig}${c.context ? ` (context ${c.context})` : ''}: ${messageOf(err)}`);
    }
  }
  const scans = new Map<ClusterApi, Found[]>();
  await mapLimit(targets, PARALLEL, async ({ api, local }) => {
    progress(`searching ${api.label} (${api.server}) for meshflow's objects`);
    try {
      scans.set(api, await api.scan(warn));
    } catch (err) {
      if (local) warn(`${api.label} was not searched: ${messageOf(err)}`);
      else errors.push(`${api.label} (${api.server}) was not searched: ${messageOf(err)}`);
    }
  });

  let trust: { api: ClusterApi; found: Found[] } | undefined;
  if (opts.trustStore) {
    const { kubeconfig, namespace } = opts.trustStore;
    progress(`searching the trust store (namespace ${namespace} of ${kubeconfig}) for meshes' CA Secrets`);
    try {
      trust = await scanTrustStore(opts.trustStore);
    } catch (err) {
      errors.push(`trust store (namespace ${namespace} of ${kubeconfig}) was not searched: ${messageOf(err)}`);
    }
  }
  // A trust Secret in a cluster also searched for objects is reported once, as the store's.
  const trustUids = new Set(trust?.found.map((f) => f.item.metadata.uid));

  const gkeFound: GkeFound[] = [];
  for (const project of opts.gke?.projects ?? []) {
    progress(`searching GKE project ${project} for meshflow's clusters and firewall rules`);
    try {
      gkeFound.push(...(await scanGke(opts.gke!.provider, project)));
    } catch (err) {
      errors.push(`GKE project ${project} was not searched: ${messageOf(err)}`);
    }
  }

  // 2. Which meshes are open: all of them, before anything is decided.
  const names = new Set<string>([...locals.flatMap((c) => c.owners), ...meshDirs, ...gkeFound.map((g) => g.mesh)]);
  for (const found of scans.values()) for (const f of found) names.add(f.mesh);
  for (const f of trust?.found ?? []) names.add(f.mesh);
  const open = await askOpen([...names].sort(), opts.isOpen);
  const isOpen = (mesh: string) => open.get(mesh) === true;

  // 3. What to do with each thing.
  const plan: Planned[] = [];
  const add = (finding: Omit<GcFinding, 'action'> & { action?: GcAction }, stage: number, run?: Planned['run']) => {
    const action = finding.action ?? (finding.kind === 'process' ? 'would-stop' : 'would-delete');
    const acts = action === 'would-delete' || action === 'would-stop';
    const p = { finding: { ...finding, action }, stage, run: acts ? run : undefined };
    plan.push(p);
    return p;
  };
  let provider: LocalProvider | undefined;
  const localProvider = async () => {
    if (!provider) {
      const pinned = async () => {
        const t = await ensureTools(['kube-apiserver', 'etcd'], progress);
        return { kubeApiserver: t['kube-apiserver'], etcd: t.etcd };
      };
      const tools = opts.localTools ? await opts.localTools() : await pinned();
      provider = new LocalProvider(stateDir, tools);
    }
    return provider;
  };

  const wholeClusters = new Set<ClusterApi>();
  for (const c of locals) {
    if (!c.owners.length) continue;
    const mesh = c.owners.join('|');
    const base = { kind: 'local-cluster' as const, where: c.dir, mesh, what: c.name };
    const openOwners = c.owners.filter(isOpen);
    if (openOwners.length) {
      const ambiguous = !c.recorded && c.owners.length > 1;
      const reason = ambiguous ? `owner not recorded; may be open mesh ${openOwners.join(', ')}` : 'workflow running';
      add({ ...base, action: 'kept', reason }, 0);
      continue;
    }
    const target = targets.find((t) => t.local === c);
    const found = target ? scans.get(target.api) : undefined;
    const ofOpen = (found ?? []).filter((f) => isOpen(f.mesh));
    if (ofOpen.length) {
      const meshes = [...new Set(ofOpen.map((f) => f.mesh))].join(', ');
      add({ ...base, action: 'kept', reason: `holds ${ofOpen.length} object(s) of open mesh ${meshes}` }, 0);
      continue;
    }
    if (target) wholeClusters.add(target.api);
    const daemons = walk(c.dir)
      .filter((f) => f.endsWith('.pid'))
      .map((f) => ({ pidFile: path.join(c.dir, f), pid: runningPid(path.join(c.dir, f), c.dir) }))
      .filter((d): d is { pidFile: string; pid: number } => d.pid !== undefined);
    const stops = daemons.map((d) => {
      const reason = `stopped with local cluster ${c.name}`;
      return add({ kind: 'process', where: d.pidFile, mesh, what: `pid ${d.pid}`, reason }, STAGE.localClusters);
    });
    const why = [
      c.recorded || c.owners.length === 1 ? '' : `owner not recorded: one of ${c.owners.join(', ')}, none open`,
      !c.running ? 'not running' : found ? `${found.length} labelled object(s) go with it` : 'could not be searched',
    ];
    add({ ...base, reason: why.filter(Boolean).join('; ') }, STAGE.localClusters, async () => {
      // Daemons the provider does not know of would outlive their directory: stop them first.
      const providers = /(^|\/)(apiserver|simulated-data-plane)\.pid$/;
      const others = daemons.filter((d) => !providers.test(d.pidFile));
      await stopDaemons(
        others.map((d) => ({ pidFile: d.pidFile, marker: c.dir })),
        0, // the cluster's data goes next: nothing to keep
      );
      // delete() reads only the cluster's name, which it rebuilds as "<mesh>-<cluster>": every split gives this name.
      const name = c.name.slice(c.owners[0].length + 1);
      const cluster: ClusterSpec = { name, provider: 'local', network: 'gc', role: 'primary' };
      try {
        await (await localProvider()).delete(c.owners[0], cluster);
      } finally {
        for (const s of stops) {
          s.finding.action = runningPid(s.finding.where, c.dir) === undefined ? 'stopped' : 'failed';
        }
      }
    });
  }

  for (const c of locals) {
    const deleted = plan.some((p) => p.finding.kind === 'local-cluster' && p.finding.where === c.dir && p.run);
    if (!c.running && !deleted) warn(`local cluster ${c.name} is not running: its objects were not searched`);
  }

  for (const [api, found] of scans) {
    if (wholeClusters.has(api)) continue;
    const openCount = new Map<string, number>();
    for (const f of found) {
      if (trustUids.has(f.item.metadata.uid)) continue;
      if (isOpen(f.mesh)) {
        openCount.set(f.mesh, (openCount.get(f.mesh) ?? 0) + 1);
        continue;
      }
      const m = f.item.metadata;
      const base = { kind: 'object' as const, where: api.label, mesh: f.mesh, what: describeItem(f.res.kind, m) };
      if (m.deletionTimestamp) {
        const finalizers = [...(m.finalizers ?? []), ...(f.item.spec?.finalizers ?? [])];
        const waiting = finalizers.length ? `, waiting for ${finalizers.join(', ')}` : '';
        add({ ...base, action: 'terminating', reason: `deleted since ${m.deletionTimestamp}${waiting}` }, 0);
      } else if (isNamespace(f.res)) {
        const inside = found.filter((o) => o.item.metadata.namespace === m.name && isOpen(o.mesh));
        if (inside.length) {
          const meshes = [...new Set(inside.map((o) => o.mesh))].join(', ');
          add({ ...base, action: 'kept', reason: `holds ${inside.length} object(s) of open mesh ${meshes}` }, 0);
        } else {
          add(base, STAGE.namespaces, () => api.deleteFound(f));
        }
      } else if (isCrd(f.res)) {
        // Deleting a CRD deletes its custom resources: only when every one of them is this mesh's.
        const keptBecause = async (): Promise<string | undefined> => {
          let foreign: string[];
          try {
            foreign = await api.foreignCustomResources(f.item, f.mesh);
          } catch (err) {
            return `its custom resources could not be checked: ${messageOf(err)}`;
          }
          if (!foreign.length) return undefined;
          const eg = foreign.slice(0, 3).join(', ');
          return `holds ${foreign.length} custom resource(s) without mesh ${f.mesh}'s labels, e.g. ${eg}`;
        };
        const reason = await keptBecause();
        if (reason) add({ ...base, action: 'kept', reason }, 0);
        else {
          add(base, STAGE.crds, async () => {
            const now = await keptBecause();
            return now ? { action: 'kept', reason: now } : api.deleteFound(f);
          });
        }
      } else {
        const stage = isWebhook(f.res) ? STAGE.webhooks : f.res.namespaced ? STAGE.namespaced : STAGE.clusterScoped;
        add(base, stage, () => api.deleteFound(f));
      }
    }
    for (const [mesh, n] of openCount) {
      const what = `${n} object(s)`;
      add({ kind: 'object', where: api.label, mesh, what, action: 'kept', reason: 'workflow running' }, 0);
    }
  }

  for (const f of trust?.found ?? []) {
    const { api } = trust!;
    const m = f.item.metadata;
    const base = { kind: 'trust-secret' as const, where: api.label, mesh: f.mesh, what: describeItem('Secret', m) };
    if (isOpen(f.mesh)) add({ ...base, action: 'kept', reason: 'workflow running' }, 0);
    else if (m.deletionTimestamp) {
      add({ ...base, action: 'terminating', reason: `deleted since ${m.deletionTimestamp}` }, 0);
    } else {
      const reason = `mesh CA keys and certificates (${Object.keys(f.item.data ?? {}).length} entries)`;
      add({ ...base, reason }, STAGE.trustSecrets, () => api.deleteFound(f));
    }
  }

  for (const g of gkeFound) {
    const base = { kind: g.kind, where: g.where, mesh: g.mesh, what: g.what };
    if (isOpen(g.mesh)) add({ ...base, action: 'kept', reason: 'workflow running' }, 0);
    else add({ ...base, reason: g.reason }, g.kind === 'firewall-rule' ? STAGE.firewalls : STAGE.gkeClusters, g.remove);
  }

  for (const mesh of meshDirs) {
    const dir = path.join(meshesDir, mesh);
    const ca = caDir(stateDir, mesh);
    const caFinding = { kind: 'ca-dir' as const, where: ca, mesh, what: 'mesh CA keys and certificates' };
    if (isOpen(mesh)) {
      if (fs.existsSync(ca)) add({ ...caFinding, action: 'kept', reason: 'workflow running' }, 0);
      continue;
    }
    const inside = inspectMeshDir(dir);
    if (inside.held.length) {
      const held = inside.held
        .map((h) => `${h.lock} held by ${h.pid === -1 ? 'another user' : `pid ${h.pid}`}`)
        .join(', ');
      add({ kind: 'mesh-dir', where: dir, mesh, what: 'mesh directory', action: 'kept', reason: `in use: ${held}` }, 0);
      continue;
    }
    for (const d of inside.daemons) {
      add({ kind: 'process', where: d.pidFile, mesh, what: `pid ${d.pid}` }, STAGE.daemons, async () => {
        await stopDaemon(d.pidFile, dir);
        fs.rmSync(logFileOf(d.pidFile), { force: true });
      });
    }
    if (fs.existsSync(ca)) add(caFinding, STAGE.caDirs, async () => fs.rmSync(ca, { recursive: true, force: true }));
    const dirFinding = { kind: 'mesh-dir' as const, where: dir, mesh, what: 'mesh directory' };
    const unknown = (others: string[]) => `holds files gc does not know: ${others.slice(0, 5).join(', ')}`;
    if (inside.others.length) add({ ...dirFinding, action: 'kept', reason: unknown(inside.others) }, 0);
    else {
      const reason = fs.existsSync(ca) || inside.daemons.length ? 'empty once its CA and daemons are gone' : 'empty';
      add({ ...dirFinding, reason }, STAGE.meshDirs, async () => {
        const others = inspectMeshDir(dir).others;
        if (others.length) return { action: 'kept', reason: unknown(others) };
        fs.rmSync(dir, { recursive: true, force: true });
        return undefined;
      });
    }
  }

  // 4. Act, stage by stage, unless this is a dry run. A workflow may have started since gc asked:
  //    ask again first, and change nothing if one did.
  if (!dryRun && plan.some((p) => p.run)) {
    const closed = [...open].filter(([, o]) => !o).map(([mesh]) => mesh);
    const opened = [...(await askOpen(closed, opts.isOpen))].filter(([, o]) => o).map(([mesh]) => mesh);
    if (opened.length) {
      const which = opened.join(', ');
      throw new GcRefused(`mesh ${which} started a workflow while gc was looking; gc changed nothing, run it again`);
    }
    const stages = [...new Set(plan.filter((p) => p.run).map((p) => p.stage))].sort((a, b) => a - b);
    for (const stage of stages) {
      await mapLimit(
        plan.filter((p) => p.run && p.stage === stage),
        PARALLEL,
        async (p) => {
          const f = p.finding;
          const verb = f.action === 'would-stop' ? 'stopping' : 'deleting';
          progress(`${verb} ${f.kind} ${f.what} (${f.where}, mesh ${f.mesh})`);
          try {
            const outcome = await p.run!();
            f.action = outcome?.action ?? (f.action === 'would-stop' ? 'stopped' : 'deleted');
            if (outcome?.reason) f.reason = outcome.reason;
          } catch (err) {
            f.action = 'failed';
            f.reason = messageOf(err);
          }
        },
      );
    }
  }

  const meshes = [...open].sort(([a], [b]) => a.localeCompare(b)).map(([mesh, o]) => ({ mesh, open: o }));
  const result = { dryRun, stateDir, findings: plan.map((p) => p.finding), meshes, warnings, errors, summary: '' };
  result.summary = summarize(result);
  return result;
}

function summarize(r: Omit<GcResult, 'summary'>): string {
  const count = (a: GcAction) => r.findings.filter((f) => f.action === a).length;
  const parts = r.dryRun
    ? [`would delete ${count('would-delete')}`, `would stop ${count('would-stop')}`]
    : [`deleted ${count('deleted')}`, `stopped ${count('stopped')}`];
  parts.push(`kept ${count('kept')}`);
  if (count('terminating')) parts.push(`${count('terminating')} still terminating`);
  if (count('failed')) parts.push(`failed ${count('failed')}`);
  const closed = r.meshes.filter((m) => !m.open).length;
  const meshes = `${closed} mesh(es) without an open workflow, ${r.meshes.length - closed} with one`;
  const errors = r.errors.length ? `; ${r.errors.length} cluster(s) could not be searched` : '';
  return `${r.dryRun ? 'dry run: ' : ''}${parts.join(', ')} (${meshes})${errors}`;
}

// ---------------------------------------------------------------------------------------------
// CLI helpers: Temporal, --kubeconfig/--context, the table.

/**
 * isOpen backed by Temporal: whether any run of the mesh name is open, mesh/<name> or one a
 * schedule started under another id (openRunsOf: each run found is described, strongly consistent).
 */
export function meshIsOpen(client: Client): (mesh: string) => Promise<boolean> {
  return async (mesh) => (await openRunsOf(client, mesh)).length > 0;
}

/**
 * Connects to the Temporal that runs the meshes (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE). Unlike the
 * other commands, gc never starts a local server: a fresh or different server would know no
 * workflows, and every mesh would look like garbage.
 */
export async function temporalIsOpen(): Promise<{
  isOpen: (mesh: string) => Promise<boolean>;
  close: () => Promise<void>;
}> {
  const target = temporalTarget();
  const connection = await connectTo(connectionOptions(target.address), 2000).catch((err: Error) => {
    throw new GcRefused(
      `${err.message}: gc cannot tell which meshes still have an open workflow, ` +
        'so it changed nothing. Start the Temporal server that runs your meshes (for the local one, any ' +
        'command such as `meshflow list` starts it) or point TEMPORAL_ADDRESS at it.',
    );
  });
  try {
    await connection.workflowService.describeNamespace({ namespace: target.namespace });
  } catch (err) {
    await connection.close();
    const why = messageOf(err);
    const ns = target.namespace;
    throw new GcRefused(`Temporal at ${target.address} cannot describe namespace ${ns} (${why}); gc changed nothing`);
  }
  const client = new Client({ connection, namespace: target.namespace, dataConverter: dataConverter() });
  return { isOpen: meshIsOpen(client), close: () => connection.close() };
}

/**
 * Commander option parsers for `--kubeconfig FILE [--context C]`, both repeatable or comma lists:
 * each --context belongs to the --kubeconfig before it (one cluster per context; none: the current one).
 */
export function gcClusterOptions(): {
  kubeconfig: (v: string) => GcCluster[];
  context: (v: string) => GcCluster[];
  clusters: GcCluster[];
} {
  const groups: Array<{ kubeconfig: string; contexts: string[] }> = [];
  const split = (v: string) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  const clusters: GcCluster[] = [];
  const rebuild = () => {
    clusters.length = 0;
    for (const g of groups) {
      if (g.contexts.length) for (const context of g.contexts) clusters.push({ kubeconfig: g.kubeconfig, context });
      else clusters.push({ kubeconfig: g.kubeconfig });
    }
    return clusters;
  };
  return {
    clusters,
    kubeconfig: (v) => {
      for (const file of split(v)) groups.push({ kubeconfig: path.resolve(file), contexts: [] });
      return rebuild();
    },
    context: (v) => {
      if (!groups.length) throw new Error(`--context ${v} must follow the --kubeconfig it belongs to`);
      groups[groups.length - 1].contexts.push(...split(v));
      return rebuild();
    },
  };
}

export function renderGc(r: GcResult): string {
  const short = (w: string) =>
    w.startsWith(r.stateDir + path.sep) ? path.join('<state>', path.relative(r.stateDir, w)) : w;
  const rows = r.findings.map((f) => [f.kind, short(f.where), f.mesh, f.what, f.action, f.reason ?? '']);
  const lines: string[] = [];
  if (rows.length) {
    const header = ['KIND', 'WHERE', 'MESH', 'WHAT', 'ACTION', 'REASON'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
    const line = (row: string[]) =>
      row
        .map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i])))
        .join('  ')
        .trimEnd();
    lines.push(line(header), ...rows.map(line));
  } else {
    lines.push("nothing of meshflow's found");
  }
  lines.push('', `state directory: ${r.stateDir}`);
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  for (const e of r.errors) lines.push(`error: ${e}`);
  lines.push(r.summary);
  return lines.join('\n') + '\n';
}

/**
 * The trust store's Secrets: `meshflow-trust-<mesh>` carrying that mesh's labels. Other Secrets of
 * its namespace, labelled or not, are not the store's (the store neither uses nor deletes them).
 */
async function scanTrustStore(where: KubernetesStoreLocation): Promise<{ api: ClusterApi; found: Found[] }> {
  kubernetesTrustStore(where); // checks the kubeconfig and its context, naming what is wrong and nothing it holds
  const api = ClusterApi.open(undefined, where.kubeconfig, where.context);
  const items = await api.list(`/api/v1/namespaces/${encodeURIComponent(where.namespace)}/secrets`, SELECTOR);
  const found: Found[] = [];
  for (const item of items) {
    const mesh = item.metadata.labels?.[MESH_LABEL];
    if (mesh && item.metadata.name === secretName(mesh)) found.push({ res: SECRETS, item, mesh });
  }
  return { api, found };
}

interface GkeFound {
  kind: 'gke-cluster' | 'firewall-rule';
  where: string;
  mesh: string;
  what: string;
  reason: string;
  remove: () => Promise<undefined>;
}

/** meshflow's GKE clusters (by their resource labels) and firewall rules (by name and description) in a project. */
async function scanGke(gke: GkeProvider, project: string): Promise<GkeFound[]> {
  const found: GkeFound[] = [];
  const [list] = await gke.clients.clusters.listClusters({ parent: `projects/${project}/locations/-` });
  for (const c of list.clusters ?? []) {
    const labels = c.resourceLabels ?? {};
    if (labels[GKE_MANAGED_BY] !== 'meshflow' || !labels[GKE_MESH_LABEL]) continue;
    const mesh = labels[GKE_MESH_LABEL];
    const cluster: ClusterSpec = {
      name: labels[GKE_CLUSTER_LABEL] ?? c.name!,
      provider: 'gke',
      network: 'gc',
      role: 'primary',
      gke: {
        project,
        location: c.location!,
        clusterName: c.name!,
        nodeCount: 1,
        machineType: 'e2-standard-4',
        releaseChannel: 'REGULAR',
        network: 'default',
      },
    };
    found.push({
      kind: 'gke-cluster',
      where: `projects/${project}/locations/${c.location}`,
      mesh,
      what: c.name!,
      reason: `labelled ${GKE_MESH_LABEL}=${mesh}, status ${c.status}`,
      remove: async () => {
        await gke.delete(mesh, cluster, { heartbeat: () => undefined });
        return undefined;
      },
    });
  }
  const [rules] = await gke.clients.firewalls.list({ project, filter: 'name = "meshflow-*"' });
  for (const r of rules ?? []) {
    const owner = GkeProvider.ruleOwner(r.description ?? '');
    if (!owner || !r.name?.startsWith('meshflow-')) continue;
    found.push({
      kind: 'firewall-rule',
      where: `projects/${project}/global/firewalls`,
      mesh: owner.mesh,
      what: r.name,
      reason: `network ${owner.network}: ${(r.sourceRanges ?? []).join(', ')}`,
      remove: async () => {
        await gke.deleteFirewall(owner.mesh, owner.network, project, { heartbeat: () => undefined });
        return undefined;
      },
    });
  }
  return found;
}
