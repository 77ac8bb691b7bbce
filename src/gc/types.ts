// What gc finds and does, and the helpers its parts share.
import { MANAGED_BY, MESH_LABEL } from '../adapters/kube';
import type { GarbageSearch } from '../providers/contract';
import { type KubernetesStoreLocation } from '../trust-store/from-env';
import { type LocalTools } from '../local/clusters';
import { type Progress } from '../util/progress';

export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** meshflow's objects: both labels (the mesh label with any value). */
export const SELECTOR = `${MANAGED_BY}=meshflow,${MESH_LABEL}`;
export const PARALLEL = 8;

/** A cluster to search besides the local ones: a kubeconfig and one of its contexts (default: current). */
export interface GcCluster {
  kubeconfig: string;
  context?: string;
}

/** What gc found; a provider's cloud search names its own kinds ('gke-cluster', 'firewall-rule'). */
export type GcKind =
  | 'object'
  | 'local-cluster'
  | 'ca-dir'
  | 'trust-secret'
  | 'mesh-dir'
  | 'process'
  | 'gke-cluster'
  | 'firewall-rule'
  | (string & {});
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
  /** Clouds to search, each through its provider's GarbageSearch (`--provider gke --project P`). */
  clouds?: Array<{ provider: string; scopes: string[]; search: GarbageSearch }>;
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

export const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));
export const codeOf = (err: unknown) => (err as { code?: number }).code;
