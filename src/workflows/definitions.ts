// The mesh workflow's messages, shared by the workflow, the worker and every client.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { CheckResult, MeshStatus, TeardownOptions } from './types';

export const TASK_QUEUE = 'meshflow';
export const meshWorkflowId = (mesh: string) => `mesh/${mesh}`;

export const statusQuery = defineQuery<MeshStatus>('status');
/** Moves the mesh's expiry later by the given duration (e.g. "2h"); returns the new expiry. */
export const extendUpdate = defineUpdate<string, [string]>('extend');
/** Tears the mesh down now (or, while provisioning, cancels and compensates). */
export const teardownSignal = defineSignal<[TeardownOptions?]>('teardown');
/** Re-runs every check of a ready mesh; the status carries the new results, which are returned. */
export const verifyUpdate = defineUpdate<CheckResult[]>('verify');
