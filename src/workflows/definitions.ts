// The mesh workflow's messages, shared by the workflow, the worker and every client.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ApplyRequest } from '../plan/diff';
import type { MeshSpec } from '../spec/schema';
import type {
  ApplyResult,
  CheckResult,
  DriftStatus,
  MeshStatus,
  RotateRequest,
  TeardownOptions,
  UpgradeDecision,
  UpgradeRequest,
  VerifyScope,
} from './types';

export { TASK_QUEUE } from '../temporal/queues';
export const meshWorkflowId = (mesh: string) => `mesh/${mesh}`;

export const statusQuery = defineQuery<MeshStatus>('status');
/** Moves the mesh's expiry later by the given duration (e.g. "2h"); returns the new expiry. */
export const extendUpdate = defineUpdate<string, [string]>('extend');
/** Tears the mesh down now (or, while provisioning, cancels and compensates). */
export const teardownSignal = defineSignal<[TeardownOptions?]>('teardown');
/**
 * Re-runs the checks of a ready mesh (every one, or those `only` names by code); the status carries
 * the new results (in place of the earlier results of those checks), which are returned.
 */
export const verifyUpdate = defineUpdate<CheckResult[], [VerifyScope]>('verify');
/** The spec the mesh runs now (its first, or the last one `apply` made it). File references only, no secrets. */
export const specQuery = defineQuery<MeshSpec>('spec');
/**
 * Changes the running mesh to a new spec (add, remove, replace clusters; move the app). The
 * validator refuses what cannot change in place, naming the field; the answer says what changed.
 */
export const applyUpdate = defineUpdate<ApplyResult, [ApplyRequest]>('apply');
/**
 * Checks the ready mesh for drift now (as `drift.every` does): compares what its steps applied with
 * the baseline, runs every check, repairs with `drift.repair`, and returns the report.
 */
export const driftUpdate = defineUpdate<DriftStatus>('drift');
/**
 * Rotates credentials of a ready mesh: every cluster's intermediate CA (same root; the old one kept
 * until the cluster's istiod issues from the new one) or the reader tokens of its remote secrets;
 * then verify. The answer is the update as it ended, with the checks.
 */
export const rotateUpdate = defineUpdate<ApplyResult, [RotateRequest]>('rotate');
/**
 * Upgrades the ready mesh's Istio, canary by revision: the new version's control plane beside the
 * old on every cluster of a wave, the wave's default tag moved to it and its workloads restarted,
 * verified; a wave that fails is rolled back with every wave before it, and the mesh stays on the
 * old revision. When every wave passed, the old revision is removed. The answer is the update as it ended.
 */
export const upgradeUpdate = defineUpdate<ApplyResult, [UpgradeRequest]>('upgrade');
/** Tells an upgrade that waits between waves (approveEach) to go on, or to roll back every wave it made. */
export const upgradeDecisionUpdate = defineUpdate<string, [UpgradeDecision]>('upgrade-decision');
