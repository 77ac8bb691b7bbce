// The one contract a provider implements. A provider is where clusters come from (local, existing,
// gke, ...): its spec fragment and rules, the steps it adds to a mesh's plan, and (in the worker)
// how it creates, reaches and deletes a cluster, its network rules, its preflight and what gc
// searches for it.
//
// It comes in two halves because a workflow cannot import Node: the definition (this file's
// ProviderDefinition) is pure and deterministic, read by the spec schema, the plan and the workflow;
// the runtime (ClusterProvider) runs in activities. A provider in one file gives both to
// registerProvider (registry.ts); the built-in ones keep their runtime beside their definition
// (providers/<id>/runtime.ts), named in runtimes.ts, since their runtimes need Node at import.
import type { z } from 'zod';
import type { ClusterAccess } from '../adapters/access';
import type { Heartbeat } from '../adapters/kube';
import type { IstiodRunner } from '../local/istiod-runner';
import type { ClusterSpec, MeshSpec } from '../spec/schema';
import type { TrustStore } from '../trust-store/store';

/** Adds a problem to the spec being checked, at a path under the mesh (e.g. ['clusters', 0, 'gke']). */
export type SpecIssue = (path: Array<string | number>, message: string) => void;

/** What a provider's cluster adds to a mesh's plan. */
export interface CreateStepText {
  /** What the create-cluster step makes (or connects to), shown by `plan` and `status`. */
  creates: string;
  /** What undoing it does; undefined: the cluster is not meshflow's to delete. */
  undo?: string;
  /** How long the step usually takes, for the plan's estimate. */
  estimateMs: number;
}

/** Network rules a provider makes when two or more of its clusters share a mesh network (GKE: a VPC firewall). */
export interface NetworkRuleText {
  creates(clusters: string[], network: string): string;
  undo: string;
  estimateMs: number;
}

/** The deterministic half: read by the spec schema, the plan and the workflow (which cannot import Node). */
export interface ProviderDefinition {
  /** The value of a cluster's `provider`, and the name of its settings section (`gke:`). */
  id: string;
  /** One line: where its clusters come from (the spec reference and `meshflow schema` show it). */
  summary: string;
  /** The cluster's `<id>:` section: its fields, defaults and bounds. */
  settings: z.ZodType;
  /** Whether a cluster of this provider must have the section (local: no; gke: yes). */
  settingsRequired: boolean;
  /** Rules on one cluster that need more than its section (names derived from the mesh's, say). */
  checkCluster?(mesh: MeshSpec, cluster: ClusterSpec, index: number, issue: SpecIssue): void;
  /** Rules across the mesh's clusters of this provider (one name per project, one VPC per network). */
  checkMesh?(mesh: MeshSpec, clusters: Array<{ cluster: ClusterSpec; index: number }>, issue: SpecIssue): void;
  /** The create-cluster step of one of its clusters. */
  createStep(mesh: MeshSpec, cluster: ClusterSpec): CreateStepText;
  /** Whether meshflow makes (and so deletes) the cluster; false: it connects to one the user runs. */
  createsCluster: boolean;
  /**
   * What the preflight checks of its clusters, before anything changes; undefined: the provider's
   * clusters need no preflight (meshflow made them here a moment ago).
   */
  preflight?(clusters: string[]): string;
  /** The cluster itself runs on the worker's machine (local): only that machine can undo what is in it. */
  runsOnHost: boolean;
  /** Reaching the cluster needs one machine's disk (a local cluster, a kubeconfig file not copied at up). */
  hostBound(cluster: ClusterSpec): boolean;
  /** Network rules for its clusters that share a mesh network; undefined: none needed. */
  networkRules?: NetworkRuleText;
  /** Istio's `global.platform` for an ambient install on its clusters (gke), if Istio has one. */
  istioPlatform?: string;
}

/** What a provider's create or delete is given by the step that runs it. */
export interface ProviderContext {
  /** Reports progress; it is kept with the step, and the next attempt gets it back as `previous`. */
  heartbeat: Heartbeat;
  /** The last progress an earlier attempt of this step reported (e.g. the cloud operation it started). */
  previous?: unknown;
  signal?: AbortSignal;
}

export interface PreflightContext {
  signal?: AbortSignal;
  /** Whether every cluster of the mesh is on this machine (a loopback API address is then fine). */
  allLocal: boolean;
}

/** A network rule as the ledger records it, before it is made (its undo deletes it by this). */
export interface NetworkRuleRef {
  network: string;
  project: string;
  name: string;
}

/** The runtime of a provider's network rules (see NetworkRuleText). */
export interface NetworkRules {
  /** The rule a network's clusters get: recorded in the ledger before `ensure` makes it. */
  ref(mesh: string, network: string, clusters: ClusterSpec[]): NetworkRuleRef;
  /** Makes (or finds) the rule; answers what the step shows (its outputs). */
  ensure(mesh: string, network: string, clusters: ClusterSpec[], ctx: ProviderContext): Promise<Record<string, string>>;
  delete(mesh: string, rule: NetworkRuleRef, ctx: ProviderContext): Promise<void>;
}

/** Something gc found in a provider's cloud that carries a mesh's mark. */
export interface ProviderGarbage {
  /** 'gke-cluster', 'firewall-rule', ...: what `gc` prints in its kind column. */
  kind: string;
  /** Network rules go before clusters (a rule may name them). */
  stage: 'network-rules' | 'clusters';
  where: string;
  mesh: string;
  what: string;
  reason: string;
  remove(): Promise<undefined>;
}

/** What gc searches in a provider's cloud, one scope (a GCP project) at a time. */
export interface GarbageSearch {
  /** What a scope is, for `gc --provider ID --project P` ("GCP project"). */
  scope: string;
  scan(scope: string): Promise<ProviderGarbage[]>;
}

/** The worker's half: how a cluster is made, reached and deleted. */
export interface ClusterProvider {
  create(mesh: string, cluster: ClusterSpec, ctx: ProviderContext): Promise<void>;
  delete(mesh: string, cluster: ClusterSpec, ctx: ProviderContext): Promise<void>;
  /** How to reach the cluster; a cluster it made that does not exist (any more) is a ClusterGoneError. */
  access(mesh: string, cluster: ClusterSpec): Promise<ClusterAccess>;
  /**
   * Checks, before anything changes, that the cluster can join the mesh (reachable, supported,
   * permitted, not someone else's); each problem says what to fix. Undefined: nothing to check.
   */
  preflight?(mesh: string, cluster: ClusterSpec, ctx: PreflightContext): Promise<string[]>;
  /** Whether the cluster's API server is on this machine, known without contacting it (default: no). */
  onThisMachine?(mesh: string, cluster: ClusterSpec): Promise<boolean>;
  /** istiod as a process on this machine for its clusters (local clusters, the GKE emulator's). */
  istiodRunner?: IstiodRunner;
  networkRules?: NetworkRules;
  garbage?: GarbageSearch;
  /** Releases clients (gRPC channels); called when the worker or the CLI is done with the provider. */
  close?(): Promise<void>;
}

/** What the worker gives a provider's runtime to build from. */
export interface ProviderEnv {
  stateDir: string;
  /** The pinned tools by name (kube-apiserver, etcd, kwok, pilot-discovery, istioctl), paths on this machine. */
  tools: Record<string, string>;
  /** Where meshes' CAs and the files `up` copied are kept (MESHFLOW_TRUST_STORE). */
  trustStore?: TrustStore;
  /** The runtimes built before this one, by id: a provider may build on another's (a pool of local clusters). */
  providers: Record<string, ClusterProvider>;
}

export type RuntimeFactory = (env: ProviderEnv) => ClusterProvider;

/** A provider: its definition and, for one registered at run time, its runtime. */
export interface ProviderModule {
  definition: ProviderDefinition;
  runtime?: RuntimeFactory;
}
