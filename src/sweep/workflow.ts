// sweepMeshes: the safety net a Temporal Schedule runs (`meshflow schedule create sweep`). An
// activity lists the open mesh workflows and their status; this workflow decides, on its own
// (deterministic) clock, which to tear down, and signals exactly the run it judged. A mesh's own
// TTL timer normally ends it: the sweep catches one whose deadline passed while it stayed open,
// and one left `kept` after a failure for longer than the kept limit.
import { getExternalWorkflowHandle, proxyActivities } from '@temporalio/workflow';
import type { SweepActivities, SweptMesh } from './activities';
import { teardownSignal } from '../workflows/definitions';

export interface SweepInput {
  /** A mesh kept after a failure longer than this is torn down. */
  keptLimitMs: number;
  /** A mesh is expired only this long after its deadline (its own timer gets the first go). */
  graceMs?: number;
}

export interface SweepVerdict {
  mesh: string;
  workflowId: string;
  runId: string;
  reason: string;
}

export interface SweepResult {
  /** Workflow time of the sweep. */
  at: string;
  /** Open meshes looked at. */
  looked: number;
  tornDown: SweepVerdict[];
  /** Meshes whose status could not be read (no worker answered): left alone. */
  unreadable: Array<{ workflowId: string; error: string }>;
}

const { listOpenMeshes } = proxyActivities<SweepActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 3 },
  summary: 'list open meshes and their status',
});

/**
 * When a kept mesh became kept: the status has no timestamp for it, but the workflow keeps it only
 * after every running step has ended, so the last step end time is that moment (or the start).
 */
export function keptSince(m: SweptMesh): number {
  const ends = (m.status?.steps ?? []).flatMap((s) => (s.endedAt ? [Date.parse(s.endedAt)] : []));
  return Math.max(Date.parse(m.status?.startedAt ?? m.startedAt), ...ends);
}

/** Why the sweep tears `m` down at `now`, or undefined to leave it. Pure: the workflow's decision. */
export function verdict(m: SweptMesh, now: number, input: SweepInput): string | undefined {
  const s = m.status;
  if (!s) return undefined;
  const grace = input.graceMs ?? 0;
  if (['ready', 'provisioning', 'kept'].includes(s.phase) && s.expiresAt) {
    const late = now - Date.parse(s.expiresAt);
    if (late > grace)
      return `deadline ${s.expiresAt} passed ${Math.round(late / 1000)}s ago and the mesh is still open`;
  }
  if (s.phase === 'kept') {
    const kept = now - keptSince(m);
    if (kept >= input.keptLimitMs)
      return `kept since ${new Date(keptSince(m)).toISOString()} (${Math.round(kept / 1000)}s), over the kept limit of ${Math.round(input.keptLimitMs / 1000)}s`;
  }
  return undefined;
}

export async function sweepMeshes(input: SweepInput): Promise<SweepResult> {
  const meshes = await listOpenMeshes();
  const now = Date.now();
  const tornDown: SweepVerdict[] = [];
  for (const m of meshes) {
    const reason = verdict(m, now, input);
    if (!reason) continue;
    // Pinned to the run judged: a mesh started again under the same id meanwhile is not touched.
    await getExternalWorkflowHandle(m.workflowId, m.runId).signal(teardownSignal);
    tornDown.push({ mesh: m.name, workflowId: m.workflowId, runId: m.runId, reason });
  }
  return {
    at: new Date(now).toISOString(),
    looked: meshes.length,
    tornDown,
    unreadable: meshes.flatMap((m) => (m.error ? [{ workflowId: m.workflowId, error: m.error }] : [])),
  };
}
