// The mesh operations of the API: what each asks Temporal (through src/client.ts, as the CLI does),
// within a deadline, and what Temporal's answers mean to a client (404 unknown, 409 not now).
import {
  type Client,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowExecutionDescription,
} from '@temporalio/client';
import {
  CREATED_BY_MEMO,
  MeshAlreadyRunningError,
  type StatusView,
  applyMesh,
  decideUpgrade,
  driftMesh,
  rotateMesh,
  extendMesh,
  meshCreatedBy,
  meshHandle,
  meshStatus,
  meshWebUiUrl,
  planChange,
  startMesh,
  startUpgrade,
  statusView,
  teardownMesh,
  verifyMesh,
} from '../client';
import { SpecError, locateProblems, parseMeshSpec } from '../spec/load';
import { describeDelta } from '../plan/diff';
import { PermanentError } from '../util/errors';
import type { TrustStore } from '../trust-store/store';
import type { MeshSpec } from '../spec/schema';
import { MESH_SEARCH_ATTRIBUTES } from '../temporal/search-attributes';
import { TASK_QUEUE, meshWorkflowId } from '../workflows/definitions';
import type {
  ApplyResult,
  CheckResult,
  DriftStatus,
  MeshPhase,
  RotateRequest,
  TeardownOptions,
  UpgradeDecision,
  UpgradeRequest,
} from '../workflows/types';
import { ApiError, innermostMessage, specProblems } from './errors';
import { assertFilesAllowed } from './file-roots';
import {
  IdempotencyKeys,
  REQUEST_MEMO,
  type RequestMemo,
  type Started,
  recordedStart,
  specDigest,
} from './idempotency';
import { type Quotas, withCreatorAttribute } from './quotas';
import { PHASES } from './schemas';

/** How long a call to Temporal may take before the request fails with 503 (verify waits for its checks). */
const DEADLINE_MS = 10_000;
const EXTENDABLE: MeshPhase[] = ['provisioning', 'ready', 'updating', 'kept'];
export { CREATED_BY_MEMO } from '../client';

export class Meshes {
  private readonly keys = new IdempotencyKeys();
  /**
   * Status queries in flight, by mesh. A workflow answers its queries one at a time, so concurrent
   * reads of one mesh share one query (single flight) instead of queueing behind each other. A
   * change (extend, delete, verify) drops the entry: a read that starts after it asks anew.
   */
  private readonly reading = new Map<string, Promise<StatusView>>();
  private readonly creators = new Map<string, Promise<string | undefined>>();
  /** The client that starts meshes: it also records the token's name in a search attribute (see quotas.ts). */
  private starter?: Client;
  /** The last drift report seen of each mesh (its checkedAt): a report is counted once. */
  private readonly driftSeen = new Map<string, string>();

  constructor(
    readonly client: Client,
    private readonly namespace: string,
    private readonly quotas: Quotas,
    private readonly uiUrl?: string,
    private readonly trustStore?: TrustStore,
    /** Told each drift report the first time the API sees it (the metrics count its items). */
    private readonly onDrift: (mesh: string, report: DriftStatus) => void = () => {},
  ) {}

  private sawDrift(mesh: string, report: DriftStatus | undefined): void {
    if (!report || this.driftSeen.get(mesh) === report.checkedAt) return;
    this.driftSeen.set(mesh, report.checkedAt);
    this.onDrift(mesh, report);
  }

  /** `fn`'s calls to Temporal, failing (503) after `ms`. */
  temporal<T>(fn: () => Promise<T>, ms = DEADLINE_MS): Promise<T> {
    return this.client.connection.withDeadline(Date.now() + ms, fn);
  }

  private webUi(mesh: string): { webUi?: string } {
    return this.uiUrl ? { webUi: meshWebUiUrl(this.uiUrl, this.namespace, mesh) } : {};
  }

  /**
   * Starts the mesh for the token named `token` (within its quota of open meshes); with an
   * idempotency key, answers what the key answered before (see idempotency.ts) instead, quota or
   * not. `replayed` says which.
   */
  async start(spec: MeshSpec, token: string, key?: string): Promise<{ started: Started; replayed: boolean }> {
    const digest = specDigest(spec);
    const start = (): Promise<Started> => this.quotas.create(token, () => this.startAs(spec, token, digest, key));
    if (!key) return { started: await start(), replayed: false };
    const recorded = () =>
      this.temporal(() => recordedStart(this.client, spec.name, key, digest, this.webUi(spec.name)));
    return this.keys.answer(key, digest, recorded, start);
  }

  private async startAs(spec: MeshSpec, token: string, digest: string, key?: string): Promise<Started> {
    const memo: RequestMemo = { specSha256: digest, ...(key ? { idempotencyKey: key } : {}) };
    const memos = { [REQUEST_MEMO]: memo, [CREATED_BY_MEMO]: token };
    try {
      this.starter ??= withCreatorAttribute(this.client, CREATED_BY_MEMO);
      const starter = this.starter;
      const handle = await this.temporal(() => startMesh(starter, spec, TASK_QUEUE, memos, this.trustStore));
      return {
        name: spec.name,
        workflowId: handle.workflowId,
        runId: handle.firstExecutionRunId,
        ...this.webUi(spec.name),
      };
    } catch (err) {
      // What the files (or PEM) hold cannot be used: a root that is no CA, a file that cannot be read.
      if (err instanceof PermanentError) throw new ApiError(400, 'invalid_spec', err.message);
      if (!(err instanceof MeshAlreadyRunningError)) throw err;
      throw new ApiError(
        409,
        'mesh_already_running',
        `mesh ${spec.name} is already running (workflow ${meshWorkflowId(spec.name)}): ` +
          `GET /v1/meshes/${spec.name} for its status, DELETE it before starting it again`,
      );
    }
  }

  /** The status and, for a run the API started, the name of the token it was started with (its memo). */
  async statusWithCreator(mesh: string): Promise<StatusView & { createdBy?: string }> {
    const [status, createdBy] = await Promise.all([this.status(mesh), this.creator(mesh)]);
    return createdBy ? { ...status, createdBy } : status;
  }

  /** The memo's createdBy of the mesh's run (or its chain's first run); concurrent reads share one lookup. */
  private creator(mesh: string): Promise<string | undefined> {
    let lookup = this.creators.get(mesh);
    if (!lookup) {
      lookup = this.temporal(() => meshCreatedBy(this.client, mesh)).catch(() => undefined);
      this.creators.set(mesh, lookup);
      void lookup.finally(() => this.creators.get(mesh) === lookup && this.creators.delete(mesh));
    }
    return lookup;
  }

  /** The status query, as `meshflow status --json` prints it; 404 when no workflow of that name ever ran. */
  async status(mesh: string): Promise<StatusView> {
    let read = this.reading.get(mesh);
    if (!read) {
      read = this.temporal(() => meshStatus(this.client, mesh))
        .then(statusView)
        .then((s) => {
          this.sawDrift(mesh, s.drift);
          return s;
        });
      this.reading.set(mesh, read);
      const done = read;
      void done.then(
        () => this.reading.get(mesh) === done && this.reading.delete(mesh),
        () => this.reading.get(mesh) === done && this.reading.delete(mesh),
      );
    }
    try {
      return await read;
    } catch (err) {
      throw err instanceof WorkflowNotFoundError ? noMesh(mesh) : err;
    }
  }

  /** A change to `mesh` is under way: reads from now on ask Temporal anew. */
  private changed(mesh: string): void {
    this.reading.delete(mesh);
  }

  async extend(mesh: string, by: string): Promise<string> {
    this.changed(mesh);
    try {
      return await this.temporal(() => extendMesh(this.client, mesh, by));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw await this.hasEnded(mesh);
      if (!(err instanceof WorkflowUpdateFailedError)) throw err;
      // The workflow refused: either the mesh is past extending, or the duration is too long (30 days at most).
      const { phase } = await this.status(mesh);
      if (!EXTENDABLE.includes(phase)) {
        throw new ApiError(409, 'not_extendable', `mesh ${mesh} is ${phase}: nothing to extend`);
      }
      const reason = innermostMessage(err);
      throw new ApiError(400, 'invalid_duration', reason, [{ path: 'by', message: reason, text: `by: ${reason}` }]);
    }
  }

  /** Runs every check again (or those of the codes given); answers once they have run (no deadline). */
  async verify(mesh: string, only?: string[]): Promise<CheckResult[]> {
    this.changed(mesh);
    try {
      return await verifyMesh(this.client, mesh, only);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw await this.hasEnded(mesh);
      if (!(err instanceof WorkflowUpdateFailedError)) throw err;
      const { phase } = await this.status(mesh);
      if (phase !== 'ready')
        throw new ApiError(409, 'not_ready', `mesh ${mesh} is ${phase}: checks run on a ready mesh`);
      throw new ApiError(502, 'verify_failed', `the checks could not run: ${innermostMessage(err)}`);
    }
  }

  /** Checks the mesh for drift now (and repairs it, as its spec says); answers with the report (no deadline). */
  async drift(mesh: string): Promise<DriftStatus> {
    this.changed(mesh);
    let report: DriftStatus;
    try {
      report = await driftMesh(this.client, mesh);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw await this.hasEnded(mesh);
      if (!(err instanceof WorkflowUpdateFailedError)) throw err;
      const { phase } = await this.status(mesh);
      const reason = innermostMessage(err);
      if (phase !== 'ready' || /running since|earlier meshflow release|renewing/.test(reason))
        throw new ApiError(409, phase !== 'ready' ? 'not_ready' : 'busy', reason);
      throw new ApiError(502, 'drift_failed', `the drift check could not run: ${reason}`);
    } finally {
      this.changed(mesh);
    }
    this.sawDrift(mesh, report);
    return report;
  }

  /** Rotates credentials of a ready mesh; answers with the update as it ended (no deadline). */
  async rotate(mesh: string, req: RotateRequest): Promise<ApplyResult> {
    this.changed(mesh);
    try {
      return await rotateMesh(this.client, mesh, req);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw await this.hasEnded(mesh);
      if (!(err instanceof WorkflowUpdateFailedError)) throw err;
      const { phase } = await this.status(mesh);
      const reason = innermostMessage(err);
      const bad =
        /has no cluster|must be one of|nothing to rotate|is not a duration|covers every cluster|your own root/;
      if (bad.test(reason)) throw new ApiError(400, 'bad_request', reason);
      if (phase !== 'ready' || /running since|earlier meshflow release|renewing|root rotation/.test(reason))
        throw new ApiError(409, phase !== 'ready' ? 'not_ready' : 'busy', reason);
      throw new ApiError(502, 'rotate_failed', `the rotation could not run: ${reason}`);
    } finally {
      this.changed(mesh);
    }
  }

  /**
   * Starts an Istio upgrade of a ready mesh; answers its update id once the workflow has accepted it
   * (the upgrade itself takes minutes: the status follows it). A refusal is a 400 for what the request
   * asks (a version, waves), a 409 for what the mesh is doing.
   */
  async upgrade(mesh: string, req: UpgradeRequest): Promise<string> {
    this.changed(mesh);
    try {
      return await this.temporal(() => startUpgrade(this.client, mesh, req));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw await this.hasEnded(mesh);
      if (!(err instanceof WorkflowUpdateFailedError)) throw err;
      const reason = innermostMessage(err);
      if (/one update at a time/.test(reason)) throw new ApiError(409, 'update_in_progress', reason);
      if (/Istio is upgraded on a ready mesh/.test(reason)) throw new ApiError(409, 'not_ready', reason);
      if (/running since|earlier meshflow release|renewing/.test(reason)) throw new ApiError(409, 'busy', reason);
      // What the request asks cannot be done: the version, or the waves.
      const bad = [/not a version meshflow pins/, /runs Istio \S+ already/, /has no cluster/, /is a remote/];
      const badWaves = [/is in two waves/, /every primary must be in a wave/, /every wave names/];
      if ([...bad, ...badWaves].some((r) => r.test(reason))) throw new ApiError(400, 'bad_request', reason);
      throw new ApiError(502, 'upgrade_failed', `the upgrade could not start: ${reason}`);
    } finally {
      this.changed(mesh);
    }
  }

  /** Tells an upgrade waiting between waves to go on or to roll back; answers what happens next. */
  async decideUpgrade(mesh: string, decision: UpgradeDecision): Promise<string> {
    this.changed(mesh);
    try {
      return await this.temporal(() => decideUpgrade(this.client, mesh, decision));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw await this.hasEnded(mesh);
      if (!(err instanceof WorkflowUpdateFailedError)) throw err;
      const reason = innermostMessage(err);
      if (/told continue or abort/.test(reason)) throw new ApiError(400, 'bad_request', reason);
      throw new ApiError(409, 'not_awaiting_approval', reason);
    } finally {
      this.changed(mesh);
    }
  }

  /** The change `spec` would make to the running mesh; 400 naming the fields of a change that cannot be made. */
  async planChange(mesh: string, spec: MeshSpec, text: string, replace: string[]) {
    if (spec.name !== mesh) {
      const message = `is "${spec.name}", the path names mesh "${mesh}": a mesh is not renamed in place`;
      throw new ApiError(
        400,
        'change_refused',
        `name: ${message}`,
        specProblems(locateProblems('request', [{ path: ['name'], message }], text)),
      );
    }
    let plan: Awaited<ReturnType<typeof planChange>>;
    try {
      plan = await this.temporal(() => planChange(this.client, spec, replace));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw await this.hasEnded(mesh);
      throw err;
    }
    if (plan.problems.length) {
      const problems = locateProblems('request', plan.problems, text);
      throw new ApiError(400, 'change_refused', problems.message, specProblems(problems));
    }
    const d = plan.delta!;
    const ref = (s: { id: string; kind: string; creates: string }) => ({ id: s.id, kind: s.kind, creates: s.creates });
    return {
      empty: d.empty,
      added: d.added.map(ref),
      rerun: d.rerun.map(ref),
      removed: d.removed.map(ref),
      addedClusters: d.addedClusters,
      removedClusters: d.removedClusters,
      replacedClusters: d.replacedClusters,
      moved: d.moved,
      criticalPath: d.criticalPath,
      text: describeDelta(d),
    };
  }

  /** Applies `spec` to the running mesh; answers when the update has ended (no deadline: minutes). */
  async apply(mesh: string, spec: MeshSpec, text: string, replace: string[]): Promise<ApplyResult> {
    await this.planChange(mesh, spec, text, replace); // refusals with lines, before the workflow is asked
    this.changed(mesh);
    let update: Awaited<ReturnType<typeof applyMesh>>;
    try {
      update = await this.temporal(() => applyMesh(this.client, spec, replace, this.trustStore));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw await this.hasEnded(mesh);
      if (!(err instanceof WorkflowUpdateFailedError)) throw err;
      const reason = innermostMessage(err);
      throw new ApiError(409, /one update at a time/.test(reason) ? 'update_in_progress' : 'not_ready', reason);
    }
    let result: ApplyResult;
    try {
      result = await update.result();
    } catch (err) {
      if (!(err instanceof WorkflowUpdateFailedError)) throw err;
      throw new ApiError(502, 'apply_failed', `update ${update.updateId}: ${innermostMessage(err)}`);
    } finally {
      this.changed(mesh);
    }
    if (result.update.state !== 'applied') {
      throw new ApiError(
        502,
        'apply_failed',
        `update ${result.update.id} ${result.update.state}: ${result.update.error ?? result.update.summary}`,
      );
    }
    return result;
  }

  /** Asks for the teardown (`requested`), or says the mesh had already ended and how. */
  async teardown(mesh: string, options: TeardownOptions = {}): Promise<{ phase: MeshPhase; requested: boolean }> {
    try {
      await this.temporal(() => teardownMesh(this.client, mesh, options));
      this.changed(mesh);
    } catch (err) {
      // A signal to an ended workflow is "not found" too: tell the two apart.
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      return { phase: await this.endedPhase(mesh), requested: false };
    }
    return { phase: (await this.status(mesh)).phase, requested: true };
  }

  /** The final phase of a mesh whose workflow has ended (from its search attribute, else its status); 404 when none ran. */
  private async endedPhase(mesh: string): Promise<MeshPhase> {
    let d: WorkflowExecutionDescription;
    try {
      d = await this.temporal(() => meshHandle(this.client, mesh).describe());
    } catch (err) {
      throw err instanceof WorkflowNotFoundError ? noMesh(mesh) : err;
    }
    const recorded = d.typedSearchAttributes.get(MESH_SEARCH_ATTRIBUTES.phase) as MeshPhase | undefined;
    return recorded && PHASES.includes(recorded) ? recorded : (await this.status(mesh)).phase;
  }

  private async hasEnded(mesh: string): Promise<ApiError> {
    const phase = await this.endedPhase(mesh);
    return new ApiError(409, 'mesh_ended', `mesh ${mesh} has ended (${phase}): its workflow takes no more requests`);
  }
}

const noMesh = (mesh: string) =>
  new ApiError(404, 'mesh_not_found', `no mesh ${mesh} (no workflow ${meshWorkflowId(mesh)})`);

/**
 * The spec in a create's body, validated as `meshflow validate` validates a file (problems by
 * line, column and field). File references are paths on the worker's host, which reads them: they
 * must be absolute and lie under one of `fileRoots` (see file-roots.ts); they need not exist here.
 */
export function parseSpec(text: string, json: boolean, fileRoots: string[]): MeshSpec {
  let spec: MeshSpec;
  try {
    if (json) assertJson(text);
    spec = parseMeshSpec(text, 'request', { checkFiles: false, baseDir: null });
  } catch (err) {
    if (!(err instanceof SpecError)) throw err;
    throw new ApiError(400, 'invalid_spec', err.message, specProblems(err));
  }
  assertFilesAllowed(spec, text, fileRoots);
  return spec;
}

/** A body sent as JSON must be JSON (YAML, which the spec parser also reads, is not). */
function assertJson(text: string): void {
  try {
    JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    // V8 names the position, or quotes the text it stopped at (then: from the start), or ran out of text.
    const position = message.match(/position (\d+)/)?.[1];
    const at = position ? Number(position) : /end of JSON/.test(message) ? text.length : 0;
    const before = text.slice(0, at).split('\n');
    const column = before[before.length - 1].length + 1;
    throw new SpecError('request', [{ path: '(json)', line: before.length, column, message }]);
  }
}
