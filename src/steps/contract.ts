// The contract between the mesh workflow and its activities: what a step is asked, what it
// answers, and what it created. Neutral ground: workflow code and activity code both import it,
// and nothing here does I/O. None of it is secret: kubeconfigs, CA keys and tokens stay in the
// state directory or in the clusters; only their names and locations travel through history.
import type { MeshSpec } from '../spec/schema';

/** The kinds of step a plan is made of (plan/plan.ts builds them; each has its activity). */
export type StepKind =
  | 'preflight'
  | 'create-cluster'
  | 'firewall'
  | 'root-ca'
  | 'cacerts'
  | 'control-plane'
  | 'eastwest-gateway'
  | 'expose-services'
  | 'expose-istiod'
  | 'link'
  | 'deploy-app'
  | 'addons'
  | 'verify';

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

/** Something a step created, and where: enough for its undo to find it again. */
export type Resource =
  | { type: 'cluster'; cluster: string; provider: string }
  | { type: 'objects'; cluster: string; objects: ObjectRef[] }
  | { type: 'file'; path: string }
  /** A mesh's entries in the worker's trust store (when it is not the state directory). */
  | { type: 'trust'; mesh: string }
  /** A network rule of a mesh network (GKE clusters sharing a VPC: a firewall rule); provider absent: gke. */
  | { type: 'firewall'; network: string; project: string; name: string; provider?: string };

export interface LedgerEntry {
  step: string;
  resource: Resource;
  createdAt: string;
}

export interface StepRequest {
  mesh: string;
  spec: MeshSpec;
  step: { id: string; kind: StepKind; cluster?: string; target?: string };
}

/** The verify step, limited to some checks (catalog codes) when `only` is given. */
export interface VerifyRequest extends StepRequest {
  only?: string[];
}

/** A cluster's cacerts step, to run on the given generation of intermediate (a rotation). */
export interface RotateIntermediateRequest extends StepRequest {
  generation: number;
}

/** An upgrade's work on one cluster (its control-plane step): a revision of an Istio version. */
export interface RevisionRequest extends StepRequest {
  /** The Istio version (a patch release of a pinned line) whose build renders and runs the revision. */
  version: string;
  /** The revision (istio.io/rev); undefined: Istio's default revision. */
  revision?: string;
}

/** A cluster's cacerts step, its trust bundle refreshed from the store; istiod must then trust exactly these roots. */
export interface RefreshTrustRequest extends StepRequest {
  /** SHA-256 fingerprints (first 16 hex digits) of the roots the cluster is to trust. */
  roots: string[];
}

/**
 * meshflow's own root of a generation: made (a rotation's first stage), or the older ones retired (its last).
 * A mesh with the user's root (release 6): `rootCa` is the new root the user gave, already in the
 * trust store (addRoot checks it and answers the roots to trust); retireRoots keeps only the spec's.
 */
export interface RootRequest {
  mesh: string;
  spec: MeshSpec;
  generation: number;
  rootCa?: NonNullable<MeshSpec['trust']['rootCa']>;
}

export interface UndoRequest {
  mesh: string;
  spec: MeshSpec;
  resource: Resource;
}

/** A cluster leaving the mesh: `spec` still has it. */
export interface ForgetRequest {
  mesh: string;
  spec: MeshSpec;
  cluster: string;
}

export interface ForgetOutcome {
  /** Whether every remaining istiod that could be asked no longer knows the cluster. */
  forgotten: boolean;
  /** From the start of the activity until the last istiod forgot it. */
  afterMs: number;
  detail: string;
}

/** What an undo left in place on purpose (not meshflow's, or still in use), and why. */
export interface UndoOutcome {
  untouched: Array<{ cluster?: string; object: string; reason: string }>;
}

export interface CheckResult {
  /** The check's stable code (MF0101, see src/checks/catalog.ts); results recorded before codes have none. */
  code?: string;
  name: string;
  cluster?: string;
  status: 'passed' | 'failed' | 'not-supported';
  detail: string;
  /** For a failed check: the likely cause and what to do. */
  hint?: string;
  /** How the check reached what it asked, when not through the API: `port-forward to istio-system/istiod-…`. */
  via?: string;
}

export interface StepOutcome {
  resources: Resource[];
  /** Facts worth showing in status (e.g. an east-west gateway's address). */
  outputs?: Record<string, string>;
  checks?: CheckResult[];
  attempt: number;
}

/**
 * What a failed, cancelled or timed-out step reports about itself, in its failure details or its
 * last heartbeat: everything it may have created, so that compensation can remove it.
 */
export interface StepTrace {
  resources: Resource[];
  progress?: unknown;
}

/** Where a resource lives: the cluster it is in, or '' for CA files and trust entries (undone last). */
export function resourceCluster(r: Resource): string {
  if (r.type === 'file' || r.type === 'trust') return '';
  return r.type === 'firewall' ? `firewall:${r.network}` : r.cluster;
}

/** Adds `more` to `into`, merging object lists per cluster and skipping what is already there. */
export function mergeResources(into: Resource[], more: Resource[]): Resource[] {
  const key = (o: ObjectRef) => `${o.apiVersion}/${o.kind}/${o.namespace ?? ''}/${o.name}`;
  for (const r of more) {
    if (r.type === 'objects') {
      const mine = into.find(
        (x): x is Extract<Resource, { type: 'objects' }> => x.type === 'objects' && x.cluster === r.cluster,
      );
      if (!mine) {
        into.push({ type: 'objects', cluster: r.cluster, objects: [...r.objects] });
        continue;
      }
      const known = new Set(mine.objects.map(key));
      for (const o of r.objects) if (!known.has(key(o))) mine.objects.push(o);
    } else if (!into.some((x) => JSON.stringify(x) === JSON.stringify(r))) {
      into.push(r);
    }
  }
  return into;
}
