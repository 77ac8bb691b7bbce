// The mesh workflow's state as its status query reports it, and its input. None of it is secret
// (see ../steps/contract.ts, which holds what steps exchange with the workflow).
import type { MeshSpec } from '../spec/schema';
import type { StepKind } from '../plan/plan';
import type { CheckResult, LedgerEntry, Resource } from '../steps/contract';

export type { CheckResult, LedgerEntry, Resource, StepOutcome, StepRequest } from '../steps/contract';

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
  /** What undo left in place on purpose: objects not this mesh's, CRDs others' resources still use. */
  untouched?: Array<{ cluster?: string; object: string; reason: string }>;
  /** The worker host whose state (CA keys, local clusters) the mesh's steps need, and its task queue. */
  host?: string;
  hostQueue?: string;
  /** What stands in the mesh's way beside its phase (a host that no longer picks up its steps). */
  conditions?: MeshCondition[];
  error?: string;
}

/**
 * HostUnavailable: no worker of the mesh's host has picked up one of its steps within the host
 * wait; the step waits on, and `down --abandon-host` tears down what any worker can reach.
 */
export interface MeshCondition {
  type: 'HostUnavailable';
  host: string;
  since: string;
  message: string;
}

/** What a teardown asks for beyond the default. */
export interface TeardownOptions {
  /** Tear down from any worker what needs no host, and list what only the mesh's host could remove. */
  abandonHost?: boolean;
}

export interface ProvisionMeshInput {
  spec: MeshSpec;
  /** How long a step waits for the mesh's host to pick it up before HostUnavailable (default 5m). */
  hostWait?: string;
  /** Set when the workflow continues as new: the state to carry on from. */
  carried?: MeshStatus;
}
