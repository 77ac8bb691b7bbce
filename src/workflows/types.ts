// Data the mesh workflow and its activities exchange. None of it is secret: kubeconfigs, CA keys
// and tokens stay in the state directory or in the clusters, and only their locations and names
// travel through workflow history.
import type { MeshSpec } from '../spec/schema';
import type { StepKind } from '../plan/plan';

/** Something a step created, and where: enough for its undo to find it again. */
export type Resource =
  | { type: 'cluster'; cluster: string; provider: string }
  | { type: 'objects'; cluster: string; objects: Array<{ apiVersion: string; kind: string; namespace?: string; name: string }> }
  | { type: 'file'; path: string };

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

export interface CheckResult {
  name: string;
  cluster?: string;
  status: 'passed' | 'failed' | 'not-supported';
  detail: string;
  /** For a failed check: the likely cause and what to do. */
  hint?: string;
}

export interface StepOutcome {
  resources: Resource[];
  /** Facts worth showing in status (e.g. an east-west gateway's address). */
  outputs?: Record<string, string>;
  checks?: CheckResult[];
  attempt: number;
}

export type StepState = 'pending' | 'running' | 'done' | 'failed' | 'undoing' | 'undone' | 'undo-failed' | 'kept';

export interface StepStatus {
  id: string;
  kind: StepKind;
  cluster?: string;
  target?: string;
  state: StepState;
  startedAt?: string;
  endedAt?: string;
  attempts?: number;
  lastError?: string;
  outputs?: Record<string, string>;
}

export type MeshPhase = 'provisioning' | 'ready' | 'failed' | 'compensating' | 'tearing-down' | 'deleted' | 'kept';

export interface MeshStatus {
  mesh: string;
  phase: MeshPhase;
  provider: string;
  clusters: string[];
  startedAt: string;
  readyAt?: string;
  expiresAt?: string;
  /** When `meshflow verify` last re-ran the checks. */
  verifiedAt?: string;
  steps: StepStatus[];
  ledger: LedgerEntry[];
  checks: CheckResult[];
  /** Undo failures: what could not be removed, and why. */
  leftBehind: Array<{ resource: Resource; error: string }>;
  error?: string;
}

export interface ProvisionMeshInput {
  spec: MeshSpec;
  /** Set when the workflow continues as new: the state to carry on from. */
  carried?: MeshStatus;
}
