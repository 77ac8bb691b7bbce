// The plan of a mesh, as data: every step, what it depends on, what it creates and how that is
// undone. The workflow walks this graph, `meshflow plan` prints it, the status query reports it;
// no list of steps is written anywhere else. Pure: safe to run inside workflow code.
import { SAMPLE_APPS } from '../istio/sample-apps';
import { providerDefinitions, providerOf } from '../providers/registry';
import { PermanentError } from '../util/errors';
import type { StepKind } from '../steps/contract';
import type { ClusterSpec, MeshSpec } from '../spec/schema';

export type { StepKind } from '../steps/contract';

export interface Step {
  id: string;
  kind: StepKind;
  /** The cluster the step acts on (for `link`: the cluster whose API the secret opens). */
  cluster?: string;
  /** For `link`: the cluster that receives the remote secret. For `firewall`: the mesh network. */
  target?: string;
  dependsOn: string[];
  /** What the step creates, for `meshflow plan`. */
  creates: string;
  /** How what it creates is removed, or undefined when it creates nothing. */
  undo?: string;
  /** Rough duration, for the critical path estimate (ms). */
  estimateMs: number;
}

export interface Plan {
  mesh: string;
  steps: Step[];
}

const id = (kind: StepKind, subject?: string) => (subject ? `${kind}:${subject}` : kind);

/** Whether cluster `c` needs an east-west gateway: when any other cluster is on another network, or it exposes istiod to remotes. */
function needsEastWest(mesh: MeshSpec, c: ClusterSpec): boolean {
  const multiNetwork = new Set(mesh.clusters.map((x) => x.network)).size > 1;
  const servesRemotes = mesh.clusters.some((x) => x.role === 'remote' && x.primary === c.name);
  return (multiNetwork && c.role === 'primary') || servesRemotes || (multiNetwork && c.role === 'remote');
}

const KEY_NAMES = { 'ecdsa-p256': 'ECDSA P-256', 'rsa-4096': 'RSA 4096' } as const;

/**
 * The root-ca step makes one key per cluster, and the root's unless the user brings one, all at once.
 * ECDSA P-256: under a millisecond each, the step about 0.1 s. RSA 4096: 0.4-4 s of CPU each (1.2 s
 * median), shared by the cores with the clusters being created: measured 2.5-6 s for 2-3 clusters.
 */
function rootCaEstimateMs(mesh: MeshSpec): number {
  if (mesh.trust.keyAlgorithm === 'ecdsa-p256') return 500;
  const keys = mesh.clusters.length + (mesh.trust.rootCa ? 0 : 1);
  return 2_000 * keys;
}

/**
 * Mesh networks with two or more clusters of a provider with network rules (GKE: one VPC, whose pod
 * ranges need a firewall rule to reach each other). One rule a network: its first such provider's.
 */
export function sharedNetworks(mesh: MeshSpec): Array<{ network: string; provider: string; clusters: ClusterSpec[] }> {
  const byNetwork = new Map<string, { provider: string; clusters: ClusterSpec[] }>();
  for (const c of mesh.clusters) {
    if (!providerOf(c.provider).networkRules) continue;
    const group = byNetwork.get(c.network) ?? { provider: c.provider, clusters: [] };
    if (group.provider === c.provider) group.clusters.push(c);
    byNetwork.set(c.network, group);
  }
  return [...byNetwork].filter(([, g]) => g.clusters.length > 1).map(([network, g]) => ({ network, ...g }));
}

/** Whether the mesh has clusters meshflow did not make on this machine, which a preflight checks first. */
export const needsPreflight = (mesh: MeshSpec) => mesh.clusters.some((c) => providerOf(c.provider).preflight);

export interface PlanOptions {
  /**
   * A preflight step before anything changes, for meshes with existing or GKE clusters (default:
   * when there are such clusters). False for meshes started before preflights existed.
   */
  preflight?: boolean;
}

export function buildPlan(mesh: MeshSpec, options: PlanOptions = {}): Plan {
  const preflight = (options.preflight ?? true) && needsPreflight(mesh);
  const first = preflight ? [id('preflight')] : [];
  const steps: Step[] = [
    ...(preflight ? preflightSteps(mesh) : []),
    ...trustAndClusterSteps(mesh, first),
    ...networkRuleSteps(mesh),
    ...controlPlaneSteps(mesh),
    ...linkSteps(mesh),
    ...appSteps(mesh),
  ];
  steps.push({
    id: id('verify'),
    kind: 'verify',
    dependsOn: steps.map((s) => s.id),
    creates: 'nothing: checks trust, network labels, gateways, remote secrets and istiod',
    estimateMs: 5_000,
  });
  return { mesh: mesh.name, steps };
}

/** The preflight: what each provider checks of its clusters before anything changes. */
function preflightSteps(mesh: MeshSpec): Step[] {
  const steps: Step[] = [];
  const add = (s: Step) => steps.push(s);
  const checks = providerDefinitions().flatMap((p) => {
    const names = mesh.clusters.filter((c) => c.provider === p.id).map((c) => c.name);
    return names.length && p.preflight ? [p.preflight(names)] : [];
  });
  add({
    id: id('preflight'),
    kind: 'preflight',
    dependsOn: [],
    creates: `nothing: checks before anything changes (${checks.join('; ')})`,
    estimateMs: 2_000,
  });
  return steps;
}

/** The CAs, and each cluster from its provider with its cacerts. */
function trustAndClusterSteps(mesh: MeshSpec, first: string[]): Step[] {
  const steps: Step[] = [];
  const add = (s: Step) => steps.push(s);
  const cas = mesh.trust.rootCa
    ? 'an intermediate CA per cluster, signed by your root'
    : 'mesh root CA and an intermediate CA per cluster';
  add({
    id: id('root-ca'),
    kind: 'root-ca',
    dependsOn: first,
    creates: `${cas}, ${KEY_NAMES[mesh.trust.keyAlgorithm]} keys (in the state directory, never in workflow history)`,
    undo: 'delete the CA files meshflow made',
    estimateMs: rootCaEstimateMs(mesh),
  });

  for (const c of mesh.clusters) {
    const { creates, undo, estimateMs } = providerOf(c.provider).createStep(mesh, c);
    add({
      id: id('create-cluster', c.name),
      kind: 'create-cluster',
      cluster: c.name,
      dependsOn: first,
      creates,
      undo,
      estimateMs,
    });
    add({
      id: id('cacerts', c.name),
      kind: 'cacerts',
      cluster: c.name,
      dependsOn: [id('create-cluster', c.name), id('root-ca')],
      creates: `namespace istio-system (network ${c.network}) and secret cacerts with ${c.name}'s intermediate CA`,
      undo: 'delete secret cacerts (and istio-system if meshflow created it)',
      estimateMs: 1_000,
    });
  }
  return steps;
}

/** A network rule per mesh network whose clusters' provider needs one (GKE: a VPC firewall rule). */
function networkRuleSteps(mesh: MeshSpec): Step[] {
  const steps: Step[] = [];
  const add = (s: Step) => steps.push(s);
  for (const { network, provider, clusters } of sharedNetworks(mesh)) {
    const names = clusters.map((c) => c.name);
    const rules = providerOf(provider).networkRules!;
    add({
      id: id('firewall', network),
      kind: 'firewall',
      target: network,
      dependsOn: names.map((n) => id('create-cluster', n)),
      creates: rules.creates(names, network),
      undo: rules.undo,
      estimateMs: rules.estimateMs,
    });
  }
  return steps;
}

/** Each cluster's Istio, its east-west gateway and what it exposes to other networks and remotes. */
function controlPlaneSteps(mesh: MeshSpec): Step[] {
  const steps: Step[] = [];
  const add = (s: Step) => steps.push(s);
  const multiNetwork = new Set(mesh.clusters.map((x) => x.network)).size > 1;
  for (const c of mesh.clusters) {
    const remoteDeps = c.role === 'remote' ? [id('expose-istiod', c.primary)] : [];
    add({
      id: id('control-plane', c.name),
      kind: 'control-plane',
      cluster: c.name,
      dependsOn: [id('cacerts', c.name), ...remoteDeps],
      creates:
        c.role === 'remote'
          ? `Istio remote profile on ${c.name} (istiod of ${c.primary})`
          : mesh.istio.dataPlane === 'ambient'
            ? `Gateway API CRDs and Istio's ambient profile on ${c.name} (istiod, ztunnel, istio-cni; ` +
              `mesh ${mesh.name}, network ${c.network})`
            : `Istio control plane on ${c.name} (mesh ${mesh.name}, network ${c.network})`,
      undo: 'delete every object the install applied',
      estimateMs: 20_000,
    });
    if (needsEastWest(mesh, c)) {
      add({
        id: id('eastwest-gateway', c.name),
        kind: 'eastwest-gateway',
        cluster: c.name,
        dependsOn: [id('control-plane', c.name)],
        creates:
          mesh.istio.dataPlane === 'ambient'
            ? `Gateway istio-eastwest (class istio-east-west, HBONE 15008) for network ${c.network}, ` +
              'deployed by istiod, and its load balancer address'
            : `east-west gateway for network ${c.network} (ports 15021/15443/15012/15017) and its load balancer address`,
        undo: 'delete the east-west gateway',
        estimateMs: 30_000,
      });
      // Ambient needs no AUTO_PASSTHROUGH Gateway: ztunnels reach other networks over HBONE.
      if (multiNetwork && mesh.istio.dataPlane !== 'ambient') {
        add({
          id: id('expose-services', c.name),
          kind: 'expose-services',
          cluster: c.name,
          dependsOn: [id('eastwest-gateway', c.name)],
          creates: 'Gateway cross-network-gateway (15443 AUTO_PASSTHROUGH, *.local)',
          undo: 'delete the Gateway',
          estimateMs: 2_000,
        });
      }
    }
    if (mesh.clusters.some((x) => x.role === 'remote' && x.primary === c.name)) {
      add({
        id: id('expose-istiod', c.name),
        kind: 'expose-istiod',
        cluster: c.name,
        dependsOn: [id('eastwest-gateway', c.name)],
        creates: 'Gateway istiod-gateway and VirtualService istiod-vs (15012/15017 PASSTHROUGH)',
        undo: 'delete the Gateway and VirtualService',
        estimateMs: 2_000,
      });
    }
  }
  return steps;
}

/** The remote secrets: one per pair of clusters that must read each other's API. */
function linkSteps(mesh: MeshSpec): Step[] {
  const steps: Step[] = [];
  const add = (s: Step) => steps.push(s);
  for (const [source, target] of linkPairs(mesh)) {
    add({
      id: id('link', `${source}->${target}`),
      kind: 'link',
      cluster: source,
      target,
      dependsOn: [id('control-plane', source), id('control-plane', target)],
      creates: `remote secret istio-remote-secret-${source} in ${target} (reader token for ${source})`,
      undo: `delete the remote secret from ${target}`,
      estimateMs: 2_000,
    });
  }
  return steps;
}

/** The sample app and the user's manifests per cluster, and the addons on each primary. */
function appSteps(mesh: MeshSpec): Step[] {
  const steps: Step[] = [];
  const add = (s: Step) => steps.push(s);
  const placement = appPlacement(mesh);
  for (const c of mesh.clusters) {
    const files = mesh.app.manifests.filter((m) => m.clusters.includes(c.name)).map((m) => m.file);
    if (!placement[c.name]?.length && !files.length) continue;
    const what = [
      ...(placement[c.name]?.length ? [`${mesh.app.sample} (${placement[c.name].join(', ')})`] : []),
      ...files.map((f) => `the objects of ${f}`),
    ];
    add({
      id: id('deploy-app', c.name),
      kind: 'deploy-app',
      cluster: c.name,
      dependsOn: [id('control-plane', c.name)],
      creates: what.join(' and '),
      undo: 'delete every object the deploy applied',
      estimateMs: 5_000,
    });
  }
  if (mesh.addons?.length) {
    for (const c of mesh.clusters.filter((x) => x.role === 'primary')) {
      add({
        id: id('addons', c.name),
        kind: 'addons',
        cluster: c.name,
        dependsOn: [id('control-plane', c.name)],
        creates: `Istio's ${mesh.addons.join(', ')} in istio-system (from the pinned Istio's samples/addons)`,
        undo: 'delete every object the addons applied',
        estimateMs: 15_000,
      });
    }
  }
  return steps;
}

/** Ordered (source, target) pairs: target's istiod reads source's API through the remote secret. */
export function linkPairs(mesh: MeshSpec): Array<[string, string]> {
  const primaries = mesh.clusters.filter((c) => c.role === 'primary');
  const pairs: Array<[string, string]> = [];
  for (const source of mesh.clusters) {
    for (const target of primaries) {
      if (source.name === target.name) continue;
      // A remote is read only by its own primary; primaries read each other.
      if (source.role === 'remote' && source.primary !== target.name) continue;
      pairs.push([source.name, target.name]);
    }
  }
  return pairs;
}

/** Which parts of the sample run in which cluster (default: the sample's own spread over the clusters). */
export function appPlacement(mesh: MeshSpec): Record<string, string[]> {
  if (mesh.app.sample === 'none') return {};
  return mesh.app.placement ?? SAMPLE_APPS[mesh.app.sample].defaultPlacement(mesh.clusters.map((c) => c.name));
}

/** The longest chain of estimates through the graph: the least time the whole plan can take. */
export function criticalPath(plan: Plan): { steps: string[]; estimateMs: number } {
  const byId = new Map(plan.steps.map((s) => [s.id, s]));
  const memo = new Map<string, { steps: string[]; estimateMs: number }>();
  const longest = (sid: string): { steps: string[]; estimateMs: number } => {
    const hit = memo.get(sid);
    if (hit) return hit;
    const s = byId.get(sid)!;
    let best = { steps: [] as string[], estimateMs: 0 };
    for (const d of s.dependsOn) {
      const c = longest(d);
      if (c.estimateMs > best.estimateMs) best = c;
    }
    const r = { steps: [...best.steps, sid], estimateMs: best.estimateMs + s.estimateMs };
    memo.set(sid, r);
    return r;
  };
  return plan.steps
    .map((s) => longest(s.id))
    .reduce((a, b) => (b.estimateMs > a.estimateMs ? b : a), { steps: [], estimateMs: 0 });
}

/** The primary whose istiod serves a cluster: itself, or a remote's primary. */
export function controlPlaneOf(spec: MeshSpec, c: ClusterSpec): ClusterSpec {
  if (c.role !== 'remote') return c;
  const primary = spec.clusters.find((x) => x.name === c.primary);
  if (!primary) throw new PermanentError(`no cluster ${c.primary} in mesh ${spec.name}`);
  return primary;
}
