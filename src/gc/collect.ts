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
import { LocalProvider } from '../providers/local/runtime';
import { caDir } from '../trust-store/state-dir';
import type { ClusterSpec } from '../spec/schema';
import { ensureTools } from '../tools/install';
import { logFileOf, runningPid, stopDaemon, stopDaemons } from '../util/daemon';
import { silent } from '../util/progress';
import { ClusterApi, type Found, describeItem, isCrd, isNamespace, isWebhook, scanTrustStore } from './kube';
import type { ProviderGarbage } from '../providers/contract';
import { type LocalEntry, inspectMeshDir, localEntries, walk } from './local';
import {
  DNS_LABEL,
  type GcAction,
  type GcFinding,
  type GcOptions,
  GcRefused,
  type GcResult,
  PARALLEL,
  messageOf,
} from './types';
import { mapLimit } from '../util/limit';

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
  networkRules: 11,
  cloudClusters: 12,
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

/** What exists, found before anything is decided. */
interface Survey {
  locals: LocalEntry[];
  meshesDir: string;
  meshDirs: string[];
  targets: Array<{ api: ClusterApi; local?: LocalEntry }>;
  scans: Map<ClusterApi, Found[]>;
  trust?: { api: ClusterApi; found: Found[] };
  /** A trust Secret in a cluster also searched for objects is reported once, as the store's. */
  trustUids: Set<string | undefined>;
  cloudFound: ProviderGarbage[];
}

/** What the planners share: the plan they add to, whether a mesh is open, where gc runs. */
interface Planner {
  add: (finding: Omit<GcFinding, 'action'> & { action?: GcAction }, stage: number, run?: Planned['run']) => Planned;
  plan: Planned[];
  isOpen: (mesh: string) => boolean;
  warn: (line: string) => void;
  stateDir: string;
  /** The local provider, made when a local cluster is deleted (it may build kube-apiserver and etcd first). */
  localProvider: () => Promise<LocalProvider>;
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
  const s = await survey(opts, stateDir, warn, errors);

  // 2. Which meshes are open: all of them, before anything is decided.
  const names = new Set<string>([
    ...s.locals.flatMap((c) => c.owners),
    ...s.meshDirs,
    ...s.cloudFound.map((g) => g.mesh),
  ]);
  for (const found of s.scans.values()) for (const f of found) names.add(f.mesh);
  for (const f of s.trust?.found ?? []) names.add(f.mesh);
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

  const p: Planner = { add, plan, isOpen, warn, stateDir, localProvider };
  const wholeClusters = planLocalClusters(s, p);
  await planObjects(s, p, wholeClusters);
  planTrustSecrets(s, p);
  planCloud(s, p);
  planMeshDirs(s, p);

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

async function survey(
  opts: GcOptions,
  stateDir: string,
  warn: (line: string) => void,
  errors: string[],
): Promise<Survey> {
  const progress = opts.progress ?? silent;
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
  const trustUids = new Set(trust?.found.map((f) => f.item.metadata.uid));

  const cloudFound: ProviderGarbage[] = [];
  for (const cloud of opts.clouds ?? []) {
    for (const scope of cloud.scopes) {
      const where = `${cloud.provider} ${cloud.search.scope} ${scope}`;
      progress(`searching ${where} for meshflow's clusters and network rules`);
      try {
        cloudFound.push(...(await cloud.search.scan(scope)));
      } catch (err) {
        errors.push(`${where} was not searched: ${messageOf(err)}`);
      }
    }
  }
  return { locals, meshesDir, meshDirs, targets, scans, trust, trustUids, cloudFound };
}

/**
 * Local clusters of no open mesh, deleted whole with their processes; answers the clusters whose
 * objects go with them.
 */
function planLocalClusters(s: Survey, p: Planner): Set<ClusterApi> {
  const { add, isOpen, plan, warn } = p;
  const wholeClusters = new Set<ClusterApi>();
  for (const c of s.locals) {
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
    const target = s.targets.find((t) => t.local === c);
    const found = target ? s.scans.get(target.api) : undefined;
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
        await (await p.localProvider()).delete(c.owners[0], cluster);
      } finally {
        for (const s of stops) {
          s.finding.action = runningPid(s.finding.where, c.dir) === undefined ? 'stopped' : 'failed';
        }
      }
    });
  }

  for (const c of s.locals) {
    const deleted = plan.some((p) => p.finding.kind === 'local-cluster' && p.finding.where === c.dir && p.run);
    if (!c.running && !deleted) warn(`local cluster ${c.name} is not running: its objects were not searched`);
  }

  return wholeClusters;
}

/** meshflow's objects in every cluster searched (not those of a cluster deleted whole): CRDs only when all theirs. */
async function planObjects(s: Survey, p: Planner, wholeClusters: Set<ClusterApi>): Promise<void> {
  const { add, isOpen } = p;
  for (const [api, found] of s.scans) {
    if (wholeClusters.has(api)) continue;
    const openCount = new Map<string, number>();
    for (const f of found) {
      if (s.trustUids.has(f.item.metadata.uid)) continue;
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
}

/** The trust store's Secret of each mesh with no open workflow. */
function planTrustSecrets(s: Survey, p: Planner): void {
  const { add, isOpen } = p;
  for (const f of s.trust?.found ?? []) {
    const { api } = s.trust!;
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
}

/** What the clouds' searches found (clusters, network rules). */
function planCloud(s: Survey, p: Planner): void {
  const { add, isOpen } = p;
  for (const g of s.cloudFound) {
    const base = { kind: g.kind, where: g.where, mesh: g.mesh, what: g.what };
    const stage = g.stage === 'network-rules' ? STAGE.networkRules : STAGE.cloudClusters;
    if (isOpen(g.mesh)) add({ ...base, action: 'kept', reason: 'workflow running' }, 0);
    else add({ ...base, reason: g.reason }, stage, g.remove);
  }
}

/** Each mesh directory: its CA, its daemons, the directory once empty. */
function planMeshDirs(s: Survey, p: Planner): void {
  const { add, isOpen, stateDir } = p;
  for (const mesh of s.meshDirs) {
    const dir = path.join(s.meshesDir, mesh);
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
