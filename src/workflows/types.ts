// The mesh workflow's state as its status query reports it, and its input. None of it is secret
// (see ../steps/contract.ts, which holds what steps exchange with the workflow).
import type { ClusterSpec, MeshSpec } from '../spec/schema';
import type { StepKind } from '../plan/plan';
import type { CheckResult, LedgerEntry, Resource } from '../steps/contract';
import type { DriftBaseline, DriftItem } from '../drift/types';

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

export type MeshPhase =
  'provisioning' | 'ready' | 'updating' | 'failed' | 'compensating' | 'tearing-down' | 'deleted' | 'kept';

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
  /** The mesh's state beside its phase, as conditions (Ready, Provisioning, Updating, Drifted, HostUnavailable). */
  conditions?: MeshCondition[];
  /** Clusters an update removed whose resources are not all gone yet: what their undo needs to reach them. */
  retiredClusters?: ClusterSpec[];
  /** The changes `meshflow apply` made or tried, newest last (the last 20). */
  updates?: UpdateRecord[];
  /** The last drift check of the mesh (see DriftStatus). */
  drift?: DriftStatus;
  /** A root rotation in progress (release 5). */
  rootRotation?: RootRotation;
  /** Root, intermediates and reader tokens with their expiry (computed when the status is asked; release 5). */
  trust?: TrustStatus;
  /** An Istio upgrade in progress (release 6): its waves, how far it got, whether it waits for approval. */
  upgrade?: UpgradeState;
  error?: string;
}

/**
 * One drift check (`drift.every`, or `meshflow drift`): what changed since the baseline, which
 * checks failed, and which steps ran again to repair them. `state`: `clean` (nothing found),
 * `repaired` (found and repaired, the checks pass again), `drifted` (found, `repair: false`: reported
 * only), `unrepaired` (something stays: an object that is not the mesh's, a cluster that did not
 * answer, a check no step repairs, a repair that failed).
 */
export interface DriftStatus {
  checkedAt: string;
  /** What ran it: the `drift.every` timer or a request. */
  trigger: 'timer' | 'requested';
  /** Ledger objects compared with the baseline. */
  objects: number;
  items: DriftItem[];
  failedChecks: CheckResult[];
  /** The steps that ran again (and succeeded). */
  repaired: string[];
  state: 'clean' | 'repaired' | 'drifted' | 'unrepaired';
  error?: string;
}

/**
 * Cluster API's pattern: each condition has a status, a reason in one word, a message for people
 * and when its status last changed. Ready, Provisioning and Updating are always there (once the
 * mesh has a phase); HostUnavailable only while it holds: no worker of the mesh's host has picked
 * up one of its steps within the host wait (the step waits on; `down --abandon-host` tears down
 * what any worker can reach).
 */
export interface MeshCondition {
  type: 'Ready' | 'Provisioning' | 'Updating' | 'Drifted' | 'HostUnavailable';
  status?: 'True' | 'False' | 'Unknown';
  reason?: string;
  message: string;
  lastTransitionTime?: string;
  /** HostUnavailable: the host, and since when. */
  host?: string;
  since?: string;
}

/** One `meshflow apply`: what it changed, how it ended. */
export interface UpdateRecord {
  /** The Temporal update id. */
  id: string;
  requestedAt: string;
  endedAt?: string;
  state: 'running' | 'applied' | 'rolled-back' | 'failed' | 'cancelled';
  /** In a few words: "add cluster3; link 4 pairs". */
  summary: string;
  added: string[];
  rerun: string[];
  removed: string[];
  /** Per removed cluster: how long until no remaining istiod knew it (ms), or why that was not proven. */
  forgotten?: Array<{ cluster: string; afterMs?: number; detail: string }>;
  error?: string;
}

/** What `meshflow rotate` asks for: new credentials of one kind, for some clusters (default: all). */
export interface RotateRequest {
  /**
   * `intermediates`: each cluster's CA from the same root; `readers`: the remote secrets' tokens;
   * `root`: a new root (every cluster trusts both, then every intermediate is signed by the new one,
   * then, after `grace`, the old root is dropped).
   */
  what: 'intermediates' | 'readers' | 'root';
  /** Only these clusters (readers: the links from or to them); not for root. */
  clusters?: string[];
  /** root: how long the old root stays trusted once every intermediate is the new root's (default 24h). */
  grace?: string;
  /** root: drop the old root now (the rotation's last stage), not when its grace ends. */
  finish?: boolean;
  /**
   * root of a mesh with the user's own root (release 6): the new root the user gives, which the
   * client copied into the mesh's trust store first: only that entry's prefix (`stored`) and the
   * file names (for messages) travel, never a key.
   */
  newRoot?: { stored: string; certFile?: string; keyFile?: string; chainFile?: string };
}

export const ROTATABLE = ['intermediates', 'readers', 'root'] as const;

/** What `meshflow upgrade` asks for: the mesh on another Istio version, canary by revision, in waves. */
export interface UpgradeRequest {
  /** The Istio version to run (a patch release of a line meshflow pins a build of). */
  to: string;
  /**
   * The primaries in each wave, in order (remotes go with their primary); default: one primary a
   * wave, in the spec's order.
   */
  waves?: string[][];
  /** Wait after each wave but the last for `meshflow upgrade NAME --continue` (or `--abort`). */
  approveEach?: boolean;
}

/** What an upgrade waiting between waves is told. */
export type UpgradeDecision = 'continue' | 'abort';

/** An Istio upgrade in progress. */
export interface UpgradeState {
  from: { version: string; revision?: string };
  to: { version: string; revision: string };
  /** The clusters of each wave (a primary's remotes with it). */
  waves: string[][];
  /** The wave being worked on (0-based). */
  wave: number;
  /** How many waves passed their verification (their clusters run the new revision). */
  passed: number;
  stage: 'installing' | 'switching' | 'verifying' | 'awaiting-approval' | 'rolling-back' | 'removing-old' | 'gateways';
  approveEach: boolean;
  startedAt: string;
  /** Since when it waits for `--continue` or `--abort` (stage awaiting-approval). */
  awaitingSince?: string;
}

/** A root rotation that has begun: both roots trusted until the old one is dropped. */
export interface RootRotation {
  from: number;
  to: number;
  oldRoot: string;
  newRoot: string;
  /** trusting: every cluster trusts both (intermediates may be the old root's yet); switched: all are the new one's. */
  stage: 'trusting' | 'switched';
  startedAt: string;
  /** When the old root is dropped (stage switched). */
  dropAt?: string;
  /**
   * A mesh with the user's own root (release 6): the new root (a trust store reference), and the
   * fingerprints of the roots every cluster trusts meanwhile and after (the tops of their chains).
   */
  userRoot?: {
    new: NonNullable<RotateRequest['newRoot']>;
    trusted: string[];
    after: string;
  };
  /** A user's new root: when its certificate expires. */
  newRootNotAfter?: string;
}

/** What `apply` answers: the update as it ended, and the checks that ran after it. */
export interface ApplyResult {
  update: UpdateRecord;
  phase: MeshPhase;
  clusters: string[];
  checks: CheckResult[];
}

/** What a teardown asks for beyond the default. */
/** Which checks a requested verify runs: catalog codes (MF0101...); every check when absent. */
export interface VerifyScope {
  only?: string[];
}

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
  /** Carried across continue-as-new: the drift baseline and when (workflow time) it was taken; its only copy. */
  driftBaseline?: { baseline: DriftBaseline; at: string };
}

/** A mesh's trust as its status shows it (see trust-view.ts): the root, each intermediate, each reader token. */
export interface TrustStatus {
  root?: { notAfter?: string; fingerprint?: string; source?: string };
  intermediates: Array<{
    cluster: string;
    generation: number;
    notAfter: string;
    fingerprint?: string;
    rotatedAt?: string;
    /** When a ready mesh rotates it by itself (absent with rotateBefore off). */
    rotateAt?: string;
  }>;
  readers: Array<{ source: string; target: string; expiresAt: string; renewAt?: string; rotatedAt?: string }>;
  rotateBefore: string;
  /** Clusters whose intermediate is within rotateBefore (30d when off) of its expiry now. */
  due: string[];
}
