// scheduledMesh: what a mesh schedule (`meshflow schedule create NAME --spec FILE`) starts at each
// tick. It starts the mesh as its child under the mesh's own workflow id, mesh/<name>, and follows
// it to its end; or, when a run of that mesh name is already open, ends at once as `skipped`,
// having created nothing.
//
// Why a child under mesh/<name>: every resource name derives from the mesh name, so two open runs
// of one name make (or adopt) the same clusters. A schedule's action cannot choose its workflow id
// (Temporal appends the scheduled time), and a check before a start ("is a run open?") leaves a
// window in which two starts both pass it. Temporal keeps at most one open workflow per id, and
// refuses a second start atomically: with every run of a name, by hand (`up`, the API) or by a
// schedule, under mesh/<name>, that refusal is the lock, whatever the timing. The activity's look
// beforehand only catches runs a schedule of an earlier meshflow started as mesh/<name>-<time>.
// Following the child to its end keeps the schedule's overlap policy about the mesh: the action is
// open exactly as long as the mesh is, so SKIP and BUFFER_ONE act on mesh runs, not on this one.
import {
  ChildWorkflowCancellationType,
  ChildWorkflowFailure,
  ParentClosePolicy,
  proxyActivities,
  startChild,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { MeshSpec } from '../spec/schema';
import { MESH_SEARCH_ATTRIBUTES } from '../temporal/search-attributes';
import { meshWorkflowId } from './definitions';
import type { provisionMesh } from './mesh';
import type { MeshPhase } from './types';

export interface ScheduledMeshInput {
  /** The spec, with the placement recorded as `up` records it. */
  spec: MeshSpec;
  /** The mesh run's summary and details in the Web UI, as `up` gives them. */
  summary: string;
  details: string;
}

export interface ScheduledMeshResult {
  mesh: string;
  /** The run this tick started, or the open run it found. */
  workflowId: string;
  outcome: 'ended' | 'failed' | 'skipped';
  /** The mesh's final phase, when it ended. */
  phase?: MeshPhase;
  /** Why it was skipped, or how it failed. */
  reason?: string;
}

/** The activity a scheduled mesh asks before it starts one (the sweep's activities implement it). */
export interface OpenRunsActivities {
  /** The workflow IDs of the open runs of a mesh name (mesh/<name> and scheduled ones). */
  openMeshRuns(mesh: string): Promise<string[]>;
}

const { openMeshRuns } = proxyActivities<OpenRunsActivities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 3 },
  summary: 'look for an open run of the mesh name',
});

export async function scheduledMesh(input: ScheduledMeshInput): Promise<ScheduledMeshResult> {
  const mesh = input.spec.name;
  const skipped = (workflowId: string): ScheduledMeshResult => ({
    mesh,
    workflowId,
    outcome: 'skipped',
    reason: `mesh ${mesh} is already running as ${workflowId}`,
  });
  const [open] = await openMeshRuns(mesh);
  if (open) return skipped(open);
  const workflowId = meshWorkflowId(mesh);
  let child;
  try {
    child = await startChild<typeof provisionMesh>('provisionMesh', {
      workflowId,
      args: [{ spec: input.spec }],
      // The mesh outlives this run when it is terminated or cancelled: its TTL and `down` end it.
      parentClosePolicy: ParentClosePolicy.ABANDON,
      cancellationType: ChildWorkflowCancellationType.ABANDON,
      staticSummary: input.summary,
      staticDetails: input.details,
      typedSearchAttributes: [
        { key: MESH_SEARCH_ATTRIBUTES.name, value: mesh },
        { key: MESH_SEARCH_ATTRIBUTES.phase, value: 'provisioning' },
      ],
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return skipped(workflowId);
    throw err;
  }
  try {
    return { mesh, workflowId, outcome: 'ended', phase: (await child.result()).phase };
  } catch (err) {
    if (!(err instanceof ChildWorkflowFailure)) throw err;
    return { mesh, workflowId, outcome: 'failed', reason: err.cause?.message ?? err.message };
  }
}
