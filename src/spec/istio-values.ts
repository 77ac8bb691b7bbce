// The Helm values meshflow owns in the IstioOperators it renders (src/istio/manifests.ts), and how
// the user's `istio.values` combine with them. One list serves both sides: rendering sets exactly
// these paths, and validation refuses a spec that sets any of them. Everything else in
// `istio.values` is the user's, deep-merged into every operator (global.hub and global.tag
// included: meshflow only defaults them).
import type { ClusterSpec, MeshSpec } from './schema';

/** The operator being rendered: a cluster's control plane (primary or remote profile) or its east-west gateway. */
export interface ValuesContext {
  mesh: MeshSpec;
  cluster: ClusterSpec;
  operator: 'control-plane' | 'east-west';
  /** For a remote cluster's control plane: the address of its primary's east-west gateway. */
  remotePilotAddress?: string;
}

export interface OwnedValue {
  /** Path under `istio.values` and the operator's `values` (`meshConfig.*`: the operator's meshConfig). */
  path: readonly string[];
  /** What meshflow sets it from, as the validation error says it. */
  from: string;
  /** Its value in one operator; undefined where meshflow leaves it unset. */
  value(ctx: ValuesContext): unknown;
}

const controlPlane = (ctx: ValuesContext) => ctx.operator === 'control-plane';
const remote = (ctx: ValuesContext) => controlPlane(ctx) && ctx.cluster.role === 'remote';
const servesRemotes = (ctx: ValuesContext) =>
  controlPlane(ctx) &&
  ctx.cluster.role === 'primary' &&
  ctx.mesh.clusters.some((c) => c.role === 'remote' && c.primary === ctx.cluster.name);

export const OWNED_VALUES: readonly OwnedValue[] = [
  { path: ['global', 'meshID'], from: 'from name', value: (ctx) => ctx.mesh.name },
  { path: ['global', 'multiCluster', 'clusterName'], from: 'from clusters[].name', value: (ctx) => ctx.cluster.name },
  { path: ['global', 'network'], from: 'from clusters[].network', value: (ctx) => ctx.cluster.network },
  {
    path: ['global', 'remotePilotAddress'],
    from: "on remote clusters, from the address of their primary's east-west gateway",
    value: (ctx) => (remote(ctx) ? ctx.remotePilotAddress : undefined),
  },
  {
    path: ['istiodRemote', 'injectionPath'],
    from: 'on remote clusters, from clusters[].name and clusters[].network',
    value: (ctx) => (remote(ctx) ? `/inject/cluster/${ctx.cluster.name}/net/${ctx.cluster.network}` : undefined),
  },
  {
    path: ['pilot', 'env', 'EXTERNAL_ISTIOD'],
    from: 'on primaries that serve remote clusters (istio.topology, clusters[].role)',
    value: (ctx) => (servesRemotes(ctx) ? 'true' : undefined),
  },
  {
    // Ambient meshes of several networks: istiod tells each ztunnel to reach another network's
    // workloads through that network's east-west gateway (Istio's multi-network ambient install).
    path: ['pilot', 'env', 'AMBIENT_ENABLE_MULTI_NETWORK'],
    from: 'for ambient meshes (istio.dataPlane)',
    value: (ctx) => (controlPlane(ctx) && ctx.mesh.istio.dataPlane === 'ambient' ? 'true' : undefined),
  },
  {
    path: ['gateways', 'istio-ingressgateway', 'injectionTemplate'],
    from: 'for the east-west gateway',
    value: (ctx) => (ctx.operator === 'east-west' ? 'gateway' : undefined),
  },
  {
    // DNS proxying lets a pod resolve services that exist only in other clusters (what `.global`
    // names and istiocoredns did before Istio 1.8).
    path: ['meshConfig', 'defaultConfig', 'proxyMetadata', 'ISTIO_META_DNS_CAPTURE'],
    from: 'so that pods resolve the services of other clusters',
    value: (ctx) => (controlPlane(ctx) ? 'true' : undefined),
  },
];

export type Values = Record<string, unknown>;

export function isPlainObject(v: unknown): v is Values {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Later layers win; mappings merge key by key, anything else (lists included) replaces. */
export function deepMerge(...layers: Array<Values | undefined>): Values {
  const out: Values = {};
  for (const layer of layers) {
    for (const [key, v] of Object.entries(layer ?? {})) {
      // Mappings are copied: rendering never changes the spec it renders.
      out[key] = isPlainObject(v) ? deepMerge(isPlainObject(out[key]) ? out[key] : undefined, v) : v;
    }
  }
  return out;
}

/** The values meshflow sets in one operator, as a tree. */
export function ownedValues(ctx: ValuesContext): Values {
  const tree: Values = {};
  for (const owned of OWNED_VALUES) {
    const value = owned.value(ctx);
    if (value === undefined) continue;
    let node = tree;
    for (const key of owned.path.slice(0, -1)) node = (node[key] ??= {}) as Values;
    node[owned.path[owned.path.length - 1]] = value;
  }
  return tree;
}

export interface OwnedValueProblem {
  /** Path under `istio.values`. */
  path: string[];
  message: string;
}

/** Where user values set, or block with a non-mapping, a path meshflow owns. */
export function ownedValueProblems(values: Values): OwnedValueProblem[] {
  const problems: OwnedValueProblem[] = [];
  const seen = new Set<string>();
  for (const owned of OWNED_VALUES) {
    let node: unknown = values;
    for (let i = 0; i < owned.path.length; i++) {
      const key = owned.path[i];
      if (!isPlainObject(node) || !(key in node)) break;
      node = node[key];
      const at = owned.path.slice(0, i + 1);
      const last = i === owned.path.length - 1;
      if (last) {
        problems.push({ path: at, message: `set by meshflow ${owned.from}; remove it` });
      } else if (!isPlainObject(node) && !seen.has(at.join('\0'))) {
        seen.add(at.join('\0'));
        problems.push({ path: at, message: `must be a mapping: meshflow sets ${owned.path.join('.')} in it` });
      }
    }
  }
  return problems;
}
