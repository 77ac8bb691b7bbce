// Starting and talking to mesh workflows, for the CLI and the HTTP API.
import {
  type Client,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateStage,
} from '@temporalio/client';
import { applyProblems, diffPlans, withRevisionOf } from './plan/diff';
import { type Step, appPlacement, buildPlan, criticalPath, needsPreflight } from './plan/plan';
import { upgradeSpec } from './spec/upgrade';
import type { MeshSpec } from './spec/schema';
import { PermanentError } from './util/errors';
import type { TrustStore } from './trust-store/store';
import type { NewRootFiles } from './trust-store/spec-files';
import { MESH_SEARCH_ATTRIBUTES } from './temporal/search-attributes';
import {
  TASK_QUEUE,
  applyUpdate,
  driftUpdate,
  rotateUpdate,
  extendUpdate,
  meshWorkflowId,
  specQuery,
  statusQuery,
  teardownSignal,
  upgradeDecisionUpdate,
  upgradeUpdate,
  verifyUpdate,
} from './workflows/definitions';
import type {
  ApplyResult,
  CheckResult,
  DriftStatus,
  MeshStatus,
  RotateRequest,
  TeardownOptions,
  UpgradeDecision,
  UpgradeRequest,
} from './workflows/types';
import type { provisionMesh } from './workflows/mesh';

export class MeshAlreadyRunningError extends Error {
  override name = 'MeshAlreadyRunningError';
}

const alreadyRunning = (mesh: string, which: string) =>
  new MeshAlreadyRunningError(
    `mesh ${mesh} is already running (${which}): to change it, \`meshflow apply FILE\`; ` +
      `see \`meshflow status ${mesh}\`, or \`meshflow down ${mesh}\` first`,
  );

/**
 * Starts the mesh's workflow. `memo` is kept with the run, unindexed (the HTTP API records the
 * idempotency key and spec digest of the request that started it there). With `store` (the trust
 * store the workers use), the files the spec names and a root CA given as PEM are copied into it
 * first and the run records their entries instead (src/trust-store/spec-files.ts).
 */
export async function startMesh(
  client: Client,
  spec: MeshSpec,
  taskQueue = TASK_QUEUE,
  memo?: Record<string, unknown>,
  store?: TrustStore,
) {
  // Every run of a name is mesh/<name> now (a schedule starts it as its child, src/workflows/
  // scheduled-mesh.ts), and Temporal refuses a second start of an open id. A schedule of an earlier
  // meshflow started its runs as mesh/<name>-<time>: those are looked for here.
  const scheduled = (await openRunsOf(client, spec.name)).find((r) => r.workflowId !== meshWorkflowId(spec.name));
  if (scheduled) {
    throw alreadyRunning(spec.name, `workflow ${scheduled.workflowId}, started by a schedule`);
  }
  const copied = await copiedFiles(spec, store);
  const recorded = recordedSpec(copied.spec);
  try {
    return await client.workflow.start<typeof provisionMesh>('provisionMesh', {
      taskQueue,
      workflowId: meshWorkflowId(spec.name),
      args: [{ spec: recorded }],
      memo,
      staticSummary: meshSummary(spec),
      staticDetails: planDetails(recorded),
      typedSearchAttributes: [
        { key: MESH_SEARCH_ATTRIBUTES.name, value: spec.name },
        { key: MESH_SEARCH_ATTRIBUTES.phase, value: 'provisioning' },
      ],
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      // Refused for certain: the copies are this start's alone (entries of their own), so they go.
      // After any other error the start may have happened all the same: they stay, and gc removes
      // them once no run of the mesh is open.
      if (copied.entries.length) await store!.removeEntries(spec.name, copied.entries).catch(() => undefined);
      const id = meshWorkflowId(spec.name);
      const parent = await meshHandle(client, spec.name)
        .describe()
        .then((d) => d.parentExecution?.workflowId)
        .catch(() => undefined);
      const by = parent ? `, started by a schedule as ${parent}` : '';
      throw alreadyRunning(spec.name, `workflow ${id}${by}`);
    }
    throw err;
  }
}

/**
 * The spec as a run records it, with the placement it starts with: a later build's default
 * placement never moves the parts of a mesh that is already running (nor changes its plan under replay).
 */
export function recordedSpec(spec: MeshSpec): MeshSpec {
  return spec.app.sample === 'none' || spec.app.placement
    ? spec
    : { ...spec, app: { ...spec.app, placement: appPlacement(spec) } };
}

/** The run's summary in the Web UI. */
export function meshSummary(spec: MeshSpec): string {
  const providers = [...new Set(spec.clusters.map((c) => c.provider))].join('/');
  return `mesh ${spec.name}: ${spec.clusters.length} ${providers} cluster(s), ${spec.istio.topology}`;
}

/** The plan as the Web UI shows it under the run's details (Markdown): each step and what it creates. */
export function planDetails(spec: MeshSpec): string {
  const plan = buildPlan(spec, { preflight: needsPreflight(spec) });
  const cp = criticalPath(plan);
  return [
    '**Plan**',
    '',
    ...plan.steps.map((s) => `- \`${s.id}\`: ${s.creates}${s.dependsOn.length ? ` (after ${afterOf(s)})` : ''}`),
    '',
    `Critical path (~${Math.round(cp.estimateMs / 1000)} s estimated): ` +
      cp.steps.map((id) => `\`${id}\``).join(' → '),
    '',
    `TTL ${spec.ttl}`,
  ].join('\n');
}

/** What a step waits for, as the plan's text says it. */
function afterOf(s: Step): string {
  return s.kind === 'verify' ? 'all other steps' : s.dependsOn.map((d) => `\`${d}\``).join(', ');
}

export const meshHandle = (client: Client, mesh: string) =>
  client.workflow.getHandle<typeof provisionMesh>(meshWorkflowId(mesh));

/** An open run of a mesh: its workflow and run. */
export interface OpenRun {
  workflowId: string;
  runId: string;
}

/**
 * Every open run of `mesh`, each confirmed open by describing it (strongly consistent): mesh/<name>
 * (started by hand, or by a schedule as its child), and runs a schedule of an earlier meshflow
 * started as mesh/<name>-<scheduled time>, found by their MeshName search attribute. Visibility
 * lags a start by a moment, but those schedules start no new runs under such ids.
 */
export async function openRunsOf(client: Client, mesh: string): Promise<OpenRun[]> {
  const ids = new Set([meshWorkflowId(mesh)]);
  const query =
    `WorkflowType = "provisionMesh" AND ExecutionStatus = "Running" AND ` +
    `${MESH_SEARCH_ATTRIBUTES.name.name} = "${mesh.replace(/["\\]/g, '')}"`;
  for await (const wf of client.workflow.list({ query })) ids.add(wf.workflowId);
  const runs = await Promise.all(
    [...ids].map(async (workflowId): Promise<OpenRun[]> => {
      try {
        const d = await client.workflow.getHandle(workflowId).describe();
        return d.status.name === 'RUNNING' && d.type === 'provisionMesh' ? [{ workflowId, runId: d.runId }] : [];
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return [];
        throw err;
      }
    }),
  );
  return runs.flat();
}

/**
 * The run of `mesh` that is open, pinned to its run id: mesh/<name>, else one an earlier schedule
 * started under the name; when none is open, mesh/<name> (its last run answers queries).
 */
async function openRun(client: Client, mesh: string) {
  // mesh/<name> first: one describe, and no visibility query, for every mesh but an earlier schedule's.
  try {
    const d = await meshHandle(client, mesh).describe();
    if (d.status.name === 'RUNNING') return client.workflow.getHandle<typeof provisionMesh>(d.workflowId, d.runId);
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  const [run] = await openRunsOf(client, mesh);
  return run ? client.workflow.getHandle<typeof provisionMesh>(run.workflowId, run.runId) : meshHandle(client, mesh);
}

/**
 * The mesh's workflow, as status, verify and extend address it: not pinned to a run, so a mesh
 * that continued as new is reached in its current run.
 */
export async function resolveMesh(client: Client, mesh: string) {
  return client.workflow.getHandle<typeof provisionMesh>((await openRun(client, mesh)).workflowId);
}

/** The memo field naming the API token whose request started a run (shown by the Web UI, `status` and `list`). */
export const CREATED_BY_MEMO = 'createdBy';

/**
 * The name of the API token that started the mesh's run (its memo's createdBy, or its chain's first
 * run's); undefined for a run started otherwise (`up`, a schedule).
 */
export async function meshCreatedBy(client: Client, mesh: string): Promise<string | undefined> {
  const latest = await (await resolveMesh(client, mesh)).describe();
  const firstRunId = latest.raw.workflowExecutionInfo?.firstRunId;
  const memo =
    latest.memo?.[CREATED_BY_MEMO] ??
    (firstRunId && firstRunId !== latest.runId
      ? (await client.workflow.getHandle(latest.workflowId, firstRunId).describe()).memo?.[CREATED_BY_MEMO]
      : undefined);
  return typeof memo === 'string' ? memo : undefined;
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
  /** The name of the API token that started the run (its memo's createdBy); none for a run `up` started. */
  createdBy?: string;
  /** The mesh's host picks up none of its steps (its HostUnavailable condition, from the run's memo). */
  hostUnavailable?: { host: string; since: string };
  /** The mesh's last drift check found something (from the run's memo; absent when it found nothing). */
  drift?: { state: 'repaired' | 'drifted' | 'unrepaired'; found: number; checkedAt: string };
  /** An intermediate the mesh should have rotated by itself (trust.rotateBefore) is left: the rotation failed. */
  rotationDue?: { clusters: string[]; retryAt: string; error: string };
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
      ...(typeof wf.memo?.[CREATED_BY_MEMO] === 'string' ? { createdBy: wf.memo[CREATED_BY_MEMO] } : {}),
      ...(wf.memo?.hostUnavailable
        ? { hostUnavailable: wf.memo.hostUnavailable as MeshSummary['hostUnavailable'] }
        : {}),
      ...(wf.memo?.drift ? { drift: wf.memo.drift as MeshSummary['drift'] } : {}),
      ...(wf.memo?.rotationDue ? { rotationDue: wf.memo.rotationDue as MeshSummary['rotationDue'] } : {}),
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

/**
 * Asks the mesh's open run to tear down, and returns the run it signalled, whose `result()` is the
 * mesh's final status (following a continue-as-new): `down --wait` waits on exactly that run.
 */
export async function teardownMesh(client: Client, mesh: string, options: TeardownOptions = {}) {
  for (let again = false; ; again = true) {
    const run = await openRun(client, mesh);
    try {
      await run.signal(teardownSignal, options);
      return run;
    } catch (err) {
      // The run described ended meanwhile (it continued as new, or was torn down): look once more.
      if (again || !(err instanceof WorkflowNotFoundError)) throw err;
    }
  }
}

/** The last run of a mesh whose workflow has ended: how it closed and, when it can be read, its final phase. */
export interface EndedRun {
  workflowId: string;
  /** Temporal's word for how it closed: completed, failed, terminated, timed out, cancelled. */
  closed: string;
  closedAt?: string;
  phase?: string;
}

/** The mesh's last run when it has ended; undefined when it is still open or none ever ran. */
export async function endedRun(client: Client, mesh: string): Promise<EndedRun | undefined> {
  let d;
  try {
    d = await meshHandle(client, mesh).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
  if (d.status.name === 'RUNNING') return undefined;
  // The phase the run kept in its search attribute; else (a run of an earlier meshflow) its result.
  let phase = d.typedSearchAttributes.get(MESH_SEARCH_ATTRIBUTES.phase);
  if (!phase && d.status.name === 'COMPLETED') {
    phase = (
      await meshHandle(client, mesh)
        .result()
        .catch(() => undefined)
    )?.phase;
  }
  return {
    workflowId: d.workflowId,
    closed: d.status.name.toLowerCase().replace('_', ' '),
    closedAt: d.closeTime?.toISOString(),
    ...(phase ? { phase } : {}),
  };
}

/** Runs the checks of a ready mesh again (those of the given catalog codes, or all); their results. */
export async function verifyMesh(client: Client, mesh: string, only?: string[]): Promise<CheckResult[]> {
  return (await resolveMesh(client, mesh)).executeUpdate(verifyUpdate, { args: [only?.length ? { only } : {}] });
}

/** Checks the ready mesh for drift now (repairing it unless its spec says `drift.repair: false`); the report. */
export async function driftMesh(client: Client, mesh: string): Promise<DriftStatus> {
  return (await resolveMesh(client, mesh)).executeUpdate(driftUpdate);
}

/** The spec a running mesh runs now (its first, or the last `apply`'s). */
/**
 * Rotates credentials of a ready mesh (intermediates, readers, root); the update as it ended, with
 * the checks. With `newRoot` (a mesh with the user's own root: the new root's files and the trust
 * store the workers use), the new root is checked and copied into the store first and the request
 * names only its entry; should the update be refused, the copy is removed.
 */
export async function rotateMesh(
  client: Client,
  mesh: string,
  req: RotateRequest,
  newRoot?: { files: NewRootFiles; store: TrustStore },
): Promise<ApplyResult> {
  const handle = await resolveMesh(client, mesh);
  if (!newRoot) return handle.executeUpdate(rotateUpdate, { args: [req] });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const files = require('./trust-store/spec-files') as typeof import('./trust-store/spec-files');
  const copied = await files.copyNewRoot(newRoot.store, mesh, newRoot.files);
  try {
    return await handle.executeUpdate(rotateUpdate, { args: [{ ...req, newRoot: copied.newRoot }] });
  } catch (err) {
    await newRoot.store.removeEntries(mesh, copied.entries).catch(() => undefined);
    throw err;
  }
}

/**
 * Starts an Istio upgrade of the running mesh; resolves with its update id once the workflow has
 * accepted it (the validator passed), and throws the validator's refusal (WorkflowUpdateFailedError)
 * otherwise. The upgrade goes on in the workflow: follow it in the status.
 */
export async function startUpgrade(client: Client, mesh: string, req: UpgradeRequest): Promise<string> {
  const workflow = await resolveMesh(client, mesh);
  const update = await workflow.startUpdate(upgradeUpdate, { args: [req], waitForStage: WorkflowUpdateStage.ACCEPTED });
  await throwIfRefused(workflow, update);
  return update.updateId;
}

/**
 * Throws the validator's refusal of an update started to be accepted: startUpdate hands back a
 * refused update as a handle whose result() throws the reason at once (WorkflowUpdateFailedError).
 * An accepted apply or upgrade is in the status from its first step on; its result() would wait
 * for all of it.
 */
async function throwIfRefused(
  workflow: Awaited<ReturnType<typeof resolveMesh>>,
  update: { updateId: string; result: () => Promise<unknown> },
): Promise<void> {
  const status = await workflow.query(statusQuery);
  if (!status.updates?.some((u) => u.id === update.updateId)) await update.result();
}

/** Tells an upgrade waiting between waves to go on or to roll back; the answer says what happens next. */
export async function decideUpgrade(client: Client, mesh: string, decision: UpgradeDecision): Promise<string> {
  return (await resolveMesh(client, mesh)).executeUpdate(upgradeDecisionUpdate, { args: [decision] });
}

export async function runningSpec(client: Client, mesh: string): Promise<MeshSpec> {
  const handle = await resolveMesh(client, mesh);
  try {
    return await handle.query(specQuery);
  } catch (err) {
    if (/spec/.test((err as Error).message) && /(unknown|not found|registered)/i.test((err as Error).message))
      throw new Error(
        `mesh ${mesh} was started by an earlier meshflow release, which cannot change a running mesh: ` +
          'tear it down and bring it up again to change it',
      );
    throw err;
  }
}

/**
 * Why `next` cannot replace the running mesh's spec, or the change as steps. The same rules the
 * workflow's validator applies; asked here first so the problems can name the file's lines.
 */
export async function planChange(client: Client, next: MeshSpec, replace: string[] = [], mesh = next.name) {
  const current = await runningSpec(client, mesh);
  const recorded = recordedSpec(next);
  const problems = applyProblems(upgradeSpec(current), recorded, replace);
  return {
    current,
    problems,
    delta: problems.length
      ? undefined
      : diffPlans(upgradeSpec(current), withRevisionOf(upgradeSpec(current), recorded), replace),
  };
}

/**
 * Starts `apply` on the running mesh; resolves once the workflow has accepted it (the validator
 * passed). With `store` (the workers' trust store), the files the new spec names are copied into
 * it first, as `startMesh` does; a refused update removes its copies.
 */
/**
 * The spec with the files it names copied into `store` (and their entries, to remove on a refusal),
 * or as it is without a store. Loaded when used: the copying code brings the Kubernetes client and
 * the X.509 library, which the commands that start nothing should not load.
 */
async function copiedFiles(spec: MeshSpec, store?: TrustStore): Promise<{ spec: MeshSpec; entries: string[] }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const files = require('./trust-store/spec-files') as typeof import('./trust-store/spec-files');
  if (!store && files.hasInlineRoot(spec)) {
    throw new PermanentError('trust.rootCa: a root CA given as PEM needs the trust store the workers use');
  }
  return store ? files.copySpecFiles(store, spec) : { spec, entries: [] };
}

export async function applyMesh(client: Client, next: MeshSpec, replace: string[] = [], store?: TrustStore) {
  const handle = await resolveMesh(client, next.name);
  const copied = await copiedFiles(next, store);
  try {
    const update = await handle.startUpdate(applyUpdate, {
      args: [{ spec: recordedSpec(copied.spec), ...(replace.length ? { replace } : {}) }],
      waitForStage: WorkflowUpdateStage.ACCEPTED,
    });
    await throwIfRefused(handle, update);
    return update;
  } catch (err) {
    if (copied.entries.length) await store!.removeEntries(next.name, copied.entries).catch(() => undefined);
    throw err;
  }
}
