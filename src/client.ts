// Starting and talking to mesh workflows, for the CLI and the HTTP API.
import { type Client, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { appPlacement, buildPlan, needsPreflight } from './plan/plan';
import type { MeshSpec } from './spec/schema';
import { MESH_SEARCH_ATTRIBUTES } from './temporal/search-attributes';
import {
  TASK_QUEUE,
  extendUpdate,
  meshWorkflowId,
  statusQuery,
  teardownSignal,
  verifyUpdate,
} from './workflows/definitions';
import type { CheckResult, MeshStatus, TeardownOptions } from './workflows/types';
import type { provisionMesh } from './workflows/mesh';

export class MeshAlreadyRunningError extends Error {
  override name = 'MeshAlreadyRunningError';
}

/**
 * Starts the mesh's workflow. `memo` is kept with the run, unindexed (the HTTP API records the
 * idempotency key and spec digest of the request that started it there).
 */
export async function startMesh(
  client: Client,
  spec: MeshSpec,
  taskQueue = TASK_QUEUE,
  memo?: Record<string, unknown>,
) {
  // The run records the placement it starts with: a later build's default placement never moves
  // the parts of a mesh that is already running (nor changes its plan under replay).
  const recorded =
    spec.app.sample === 'none' || spec.app.placement
      ? spec
      : { ...spec, app: { ...spec.app, placement: appPlacement(spec) } };
  // A run a schedule started carries the mesh's name with its scheduled time appended
  // (mesh/<name>-<time>): the workflow ID alone would not keep a second run of the name out.
  const scheduled = await openScheduledRun(client, spec.name);
  if (scheduled) {
    throw new MeshAlreadyRunningError(
      `mesh ${spec.name} is already running (workflow ${scheduled}, started by a schedule): see \`meshflow status ${spec.name}\`, or \`meshflow down ${spec.name}\` first`,
    );
  }
  try {
    return await client.workflow.start<typeof provisionMesh>('provisionMesh', {
      taskQueue,
      workflowId: meshWorkflowId(spec.name),
      args: [{ spec: recorded }],
      memo,
      staticSummary: `mesh ${spec.name}: ${spec.clusters.length} ${[...new Set(spec.clusters.map((c) => c.provider))].join('/')} cluster(s), ${spec.istio.topology}`,
      staticDetails: planDetails(recorded),
      typedSearchAttributes: [
        { key: MESH_SEARCH_ATTRIBUTES.name, value: spec.name },
        { key: MESH_SEARCH_ATTRIBUTES.phase, value: 'provisioning' },
      ],
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      throw new MeshAlreadyRunningError(
        `mesh ${spec.name} is already running (workflow ${meshWorkflowId(spec.name)}): see \`meshflow status ${spec.name}\`, or \`meshflow down ${spec.name}\` first`,
      );
    }
    throw err;
  }
}

/** The plan as the Web UI shows it under the run's details (Markdown): each step and what it creates. */
export function planDetails(spec: MeshSpec): string {
  const steps = buildPlan(spec, { preflight: needsPreflight(spec) }).steps;
  return ['**Plan**', '', ...steps.map((s) => `- \`${s.id}\`: ${s.creates}`), '', `TTL ${spec.ttl}`].join('\n');
}

export const meshHandle = (client: Client, mesh: string) =>
  client.workflow.getHandle<typeof provisionMesh>(meshWorkflowId(mesh));

/** The workflow ID of an open run of `mesh` that a schedule started (its ID is not mesh/<name>), if any. */
async function openScheduledRun(client: Client, mesh: string): Promise<string | undefined> {
  const query =
    `WorkflowType = "provisionMesh" AND ExecutionStatus = "Running" AND ` +
    `${MESH_SEARCH_ATTRIBUTES.name.name} = "${mesh}" AND WorkflowId != "${meshWorkflowId(mesh)}"`;
  for await (const wf of client.workflow.list({ query, pageSize: 1 })) return wf.workflowId;
  return undefined;
}

/**
 * The mesh's workflow: mesh/<name>, or, when that is not open, the open run a schedule started
 * under the name (mesh/<name>-<scheduled time>), so status, verify, extend and down find both.
 */
export async function resolveMesh(client: Client, mesh: string) {
  const direct = meshHandle(client, mesh);
  try {
    if ((await direct.describe()).status.name === 'RUNNING') return direct;
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  const scheduled = await openScheduledRun(client, mesh);
  return scheduled ? client.workflow.getHandle<typeof provisionMesh>(scheduled) : direct;
}

export async function meshStatus(client: Client, mesh: string): Promise<MeshStatus> {
  return (await resolveMesh(client, mesh)).query(statusQuery);
}

/** The status as `meshflow status --json` prints it and `GET /v1/meshes/{name}` answers it. */
export type StatusView = MeshStatus & {
  /** The istiod meshflow runs for each local primary, by cluster: `curl <address>/debug/clusterz`. */
  istiodDebug: Record<string, string>;
};

export function statusView(s: MeshStatus): StatusView {
  const istiodDebug = Object.fromEntries(
    s.steps.flatMap((st) =>
      st.kind === 'control-plane' && st.cluster && st.outputs?.istiodDebug
        ? [[st.cluster, st.outputs.istiodDebug]]
        : [],
    ),
  );
  return { ...s, istiodDebug };
}

/** An open mesh as `meshflow list` shows it, from the search attributes its workflow keeps current. */
export interface MeshSummary {
  name: string;
  workflowId: string;
  phase?: string;
  clusters?: number;
  provider?: string;
  startedAt: string;
  /** The mesh's host picks up none of its steps (its HostUnavailable condition, from the run's memo). */
  hostUnavailable?: { host: string; since: string };
}

export async function listMeshes(client: Client): Promise<MeshSummary[]> {
  const meshes: MeshSummary[] = [];
  for await (const wf of client.workflow.list({
    query: `WorkflowType = "provisionMesh" AND ExecutionStatus = "Running"`,
  })) {
    const sa = wf.typedSearchAttributes;
    meshes.push({
      name: sa.get(MESH_SEARCH_ATTRIBUTES.name) ?? wf.workflowId,
      workflowId: wf.workflowId,
      phase: sa.get(MESH_SEARCH_ATTRIBUTES.phase),
      clusters: sa.get(MESH_SEARCH_ATTRIBUTES.clusterCount),
      provider: sa.get(MESH_SEARCH_ATTRIBUTES.provider),
      startedAt: wf.startTime.toISOString(),
      ...(wf.memo?.hostUnavailable
        ? { hostUnavailable: wf.memo.hostUnavailable as MeshSummary['hostUnavailable'] }
        : {}),
    });
  }
  return meshes;
}

/** The mesh's workflow in the Temporal Web UI. */
export function meshWebUiUrl(uiUrl: string, namespace: string, mesh: string): string {
  return `${uiUrl}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(meshWorkflowId(mesh))}`;
}

export async function extendMesh(client: Client, mesh: string, by: string): Promise<string> {
  return (await resolveMesh(client, mesh)).executeUpdate(extendUpdate, { args: [by] });
}

export async function teardownMesh(client: Client, mesh: string, options: TeardownOptions = {}): Promise<void> {
  await (await resolveMesh(client, mesh)).signal(teardownSignal, options);
}

export async function verifyMesh(client: Client, mesh: string): Promise<CheckResult[]> {
  return (await resolveMesh(client, mesh)).executeUpdate(verifyUpdate);
}
