// provisionMesh: walks the mesh's plan (independent steps in parallel), records everything each
// step creates in a ledger the moment it is reported (by a finished step, or in the trace of a
// failed, cancelled or timed-out one), and on failure, cancellation, `down` or TTL expiry undoes
// the ledger newest first in a non-cancellable scope. `down` and expiry during provisioning
// cancel the running steps first. A ready mesh, or one kept after a failure (`onFailure: keep`),
// stays open until its deadline or a teardown; `extend` moves the deadline, `verify` re-runs the
// checks, and reader tokens are renewed before they expire. Long waits continue-as-new with the
// state they carry, so history stays bounded.
//
// Versioning (see docs/development.md, "Changing the workflow"): a change that alters the commands this code
// issues is guarded by one patch per release, read once at the start; meshes started by an
// earlier build replay the branch they started on.
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancelledFailure,
  CancellationScope,
  TimeoutFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  currentUpdateInfo,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import { TimeoutType } from '@temporalio/common';
import type { MeshActivities } from '../activities/types';
import { STEP_ACTIVITIES } from './activity-names';
import type { HostActivities, HostClaim } from '../activities/host';
import type { MeshSpec } from '../spec/schema';
import { providerOf } from '../providers/registry';
import { buildPlan, needsPreflight, type Plan, type Step, type StepKind } from '../plan/plan';
import { type ApplyRequest, type PlanDelta, applyProblems, diffPlans, withRevisionOf } from '../plan/diff';
import { MAX_TTL_MS, driftEveryMs, formatDurationMs, parseDuration } from '../spec/duration';
import type { DriftReport } from '../drift/types';
import { stepsForChecks, stepsForDrift } from '../drift/repair';
import { checkByCode, replaceChecks } from '../checks/catalog';
import { upgradeSpec } from '../spec/upgrade';
import { trustStatus } from './trust-view';
import {
  type LedgerEntry,
  type ObjectRef,
  type Resource,
  type StepTrace,
  type UndoOutcome,
  resourceCluster,
} from '../steps/contract';
import { NON_RETRYABLE_TYPES } from '../util/errors';
import { MESH_SEARCH_ATTRIBUTES } from '../temporal/search-attributes';
import {
  applyUpdate,
  driftUpdate,
  extendUpdate,
  rotateUpdate,
  specQuery,
  statusQuery,
  teardownSignal,
  upgradeDecisionUpdate,
  upgradeUpdate,
  verifyUpdate,
} from './definitions';
import {
  ROTATABLE,
  type ApplyResult,
  type MeshCondition,
  type MeshPhase,
  type MeshStatus,
  type CheckResult,
  type DriftStatus,
  type ProvisionMeshInput,
  type RotateRequest,
  type StepOutcome,
  type StepState,
  type StepStatus,
  type TeardownOptions,
  type UpdateRecord,
  type UpgradeDecision,
  type UpgradeRequest,
  type UpgradeState,
  type VerifyScope,
} from './types';
import { ISTIO_LINES, ISTIO_VERSION_PATTERN, revisionLabel, revisionOf } from '../istio/version';

/** Release 2: teardown cancels running steps, kept meshes stay open, deadline from the start, host-bound steps, parallel undo. */
export const PATCH_V2 = 'meshflow-v2-faults';
export const PATCH_PREFLIGHT = 'meshflow-preflight';
/**
 * Release 3: a step that fails cancels the steps running beside it before compensation starts; a
 * host that does not pick up a step within the host wait is named (HostUnavailable) and can be
 * abandoned by `down --abandon-host`; a due token renewal no longer holds up a teardown.
 */
export const PATCH_V3 = 'meshflow-v3-cancel-siblings';
/**
 * Release 4: the files a spec names (and a root CA given as PEM) are copied into the trust store
 * by `up`, and the spec names their entries (`stored`): with a store every worker reads, such a
 * mesh needs no host for them, and its ledger records the store from the start (a mesh that fails
 * before its root-ca step still removes the copies).
 */
export const PATCH_V4 = 'meshflow-v4-store-files';
/**
 * Release 4 too: a ready mesh is checked for drift every `drift.every` (and on request, the `drift`
 * update) against a baseline taken after each change, and repaired by running the owning steps again.
 */
export const PATCH_V4_DRIFT = 'meshflow-v4-drift';
/**
 * Release 5: credentials rotate on a running mesh (the `rotate` update: intermediates, reader
 * tokens), and a ready mesh rotates an intermediate by itself within `trust.rotateBefore` of its expiry.
 */
export const PATCH_V5_TRUST = 'meshflow-v5-trust';
/**
 * Release 6: `upgrade` (Istio canary by revision, in waves). Read once at the start; a mesh
 * started earlier answers an upgrade with how to get one.
 */
export const PATCH_V6_UPGRADE = 'meshflow-v6-upgrade';
/**
 * Intermediates made together rotate together: when one is due, those due within a tenth of
 * `trust.rotateBefore` join its rotation (one restart of the workloads, not one per cluster).
 * Read at each rotation by expiry; one recorded before this release replays as it ran.
 */
export const PATCH_ROTATE_TOGETHER = 'meshflow-rotate-together';

const RETRY = {
  initialInterval: '1s',
  backoffCoefficient: 2,
  maximumInterval: '30s',
  maximumAttempts: 5,
  nonRetryableErrorTypes: NON_RETRYABLE_TYPES,
};

/**
 * Per-kind activity options. Every step heartbeats every second (runStep), so a 10 s heartbeat
 * timeout notices a lost worker within seconds and the retry resumes from the step's trace.
 */
const BEAT = { heartbeatTimeout: '10 seconds' } as const;
const OPTIONS: Record<StepKind, ActivityOptions> = {
  preflight: { startToCloseTimeout: '5 minutes', ...BEAT, retry: RETRY },
  firewall: { startToCloseTimeout: '10 minutes', ...BEAT, retry: RETRY },
  'create-cluster': { startToCloseTimeout: '45 minutes', ...BEAT, retry: RETRY },
  'root-ca': { startToCloseTimeout: '2 minutes', ...BEAT, retry: RETRY },
  cacerts: { startToCloseTimeout: '2 minutes', ...BEAT, retry: RETRY },
  'control-plane': { startToCloseTimeout: '15 minutes', ...BEAT, retry: RETRY },
  'eastwest-gateway': { startToCloseTimeout: '15 minutes', ...BEAT, retry: RETRY },
  'expose-services': { startToCloseTimeout: '2 minutes', ...BEAT, retry: RETRY },
  'expose-istiod': { startToCloseTimeout: '2 minutes', ...BEAT, retry: RETRY },
  link: { startToCloseTimeout: '2 minutes', ...BEAT, retry: RETRY },
  'deploy-app': { startToCloseTimeout: '10 minutes', ...BEAT, retry: RETRY },
  addons: { startToCloseTimeout: '10 minutes', ...BEAT, retry: RETRY },
  // Checks retry transient errors themselves for 30 s and then fail as ChecksUnavailable: an API
  // outage of several minutes is not a verdict on the mesh, so the step keeps trying for a while.
  verify: { startToCloseTimeout: '10 minutes', ...BEAT, retry: { ...RETRY, maximumAttempts: 8 } },
};
/** Release 1's options, for meshes it started (their histories record these). */
const V1_HEARTBEAT: Partial<Record<StepKind, string>> = {
  'create-cluster': '2 minutes',
  'control-plane': '1 minute',
  'eastwest-gateway': '1 minute',
  'deploy-app': '1 minute',
  verify: '1 minute',
};

const UNDO_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '2 minutes',
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '30s',
    maximumAttempts: 5,
    nonRetryableErrorTypes: NON_RETRYABLE_TYPES,
  },
};

/**
 * How long the old root stays trusted once every intermediate is the new root's: Istio's default
 * workload certificate lifetime, so no certificate issued under the old root is still in use.
 */
const ROOT_GRACE = '24h';
/** An intermediate rotation that failed is tried again this much later by a ready mesh. */
const ROTATION_RETRY_MS = 30 * 60_000;
/** A renewal that failed is tried again this much later (the token it replaces is still valid for a while). */
const RENEWAL_RETRY_MS = 5 * 60_000;
/** How long a step waits for the mesh's host to pick it up before the mesh says the host is unavailable. */
const HOST_WAIT = '5 minutes';
/** A token that outlives the mesh by this much needs no renewal. */
const TOKEN_MARGIN_MS = 10 * 60_000;

/**
 * What removing a revision keeps of what it installed: CRDs, the namespace, the gateways, the
 * reader ServiceAccount and its role (the mesh's remote secrets use them), and the `istiod`
 * Service (the east-west gateway routes remotes to it; an upgrade points it at the new revision).
 */
function keptAcrossRevisions(o: ObjectRef): boolean {
  return (
    o.kind === 'CustomResourceDefinition' ||
    o.kind === 'Namespace' ||
    o.name.startsWith('istio-ingressgateway') ||
    o.name.startsWith('istio-reader') ||
    (o.kind === 'Service' && o.name === 'istiod')
  );
}

function summary(step: Step): string {
  return step.target
    ? `${step.kind} ${step.cluster} -> ${step.target}`
    : step.cluster
      ? `${step.kind} ${step.cluster}`
      : step.kind;
}

/** The mesh's host did not pick the activity up in time (a host queue no worker polls). */
function hostTimedOut(err: unknown): boolean {
  return (
    err instanceof ActivityFailure &&
    err.cause instanceof TimeoutFailure &&
    err.cause.timeoutType === TimeoutType.SCHEDULE_TO_START
  );
}

/**
 * Whether a mesh's steps need the disk of one host: local clusters run there, CAs kept in a
 * host's state directory stay there, and an existing cluster's kubeconfig and the files a spec
 * names (a user's root CA, app manifests) are read there, unless `up` copied them into the store
 * (release 4: then any worker reads them).
 */
function needsOneHost(spec: MeshSpec, claim: HostClaim, v4: boolean): boolean {
  if (!claim.sharedTrust) return true;
  if (!v4) {
    // Before release 4 no file was copied into the store: a cluster any provider but GKE's was this host's.
    return (
      spec.clusters.some((c) => providerOf(c.provider).hostBound(c)) ||
      spec.trust.rootCa !== undefined ||
      spec.app.manifests.length > 0
    );
  }
  return (
    spec.clusters.some((c) => providerOf(c.provider).hostBound(c)) ||
    (spec.trust.rootCa !== undefined && spec.trust.rootCa.stored === undefined) ||
    spec.app.manifests.some((m) => m.stored === undefined)
  );
}

/** Whether `up` copied files of the spec into the trust store (their entries are the mesh's, as its CAs are). */
function copiedFiles(spec: MeshSpec): boolean {
  return (
    spec.trust.rootCa?.stored !== undefined ||
    spec.clusters.some((c) => c.existing?.stored !== undefined) ||
    spec.app.manifests.some((m) => m.stored !== undefined)
  );
}

const objectKey = (o: ObjectRef) => `${o.apiVersion}/${o.kind}/${o.namespace ?? ''}/${o.name}`;

/** clusters[2].network, as `validate` names a field. */
function formatPath(path: Array<string | number>): string {
  return path.reduce<string>((s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${k}` : k), '');
}

/** What `down --abandon-host` ends an activity waiting on the host with. */
class HostAbandoned extends Error {}

function errorText(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) {
    const type = err.cause instanceof ApplicationFailure ? (err.cause.type ?? 'Error') : err.cause.name;
    return `${type}: ${err.cause.message}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** What a failed, cancelled or timed-out step said it may have created (its trace). */
function tracedResources(err: unknown): Resource[] {
  if (!(err instanceof ActivityFailure)) return [];
  const cause = err.cause;
  let trace: StepTrace | undefined;
  if (cause instanceof ApplicationFailure || cause instanceof CancelledFailure)
    trace = cause.details?.[0] as StepTrace | undefined;
  else if (cause instanceof TimeoutFailure) trace = cause.lastHeartbeatDetails as StepTrace | undefined;
  return Array.isArray(trace?.resources) ? trace.resources : [];
}

/**
 * The mesh workflow (workflow ID mesh/<name>): provisions the plan, lives until its deadline or a
 * teardown, serves its updates, then undoes what it made. Each run (and each continue-as-new) is
 * one MeshRun.
 */
export async function provisionMesh(input: ProvisionMeshInput): Promise<MeshStatus> {
  return new MeshRun(input).run();
}

/** What the waves of one upgrade share: where from and to, the waves, its state, the clusters whose tag moved. */
interface UpgradeRun {
  from: UpgradeState['from'];
  to: UpgradeState['to'];
  waves: string[][];
  up: UpgradeState;
  switched: Set<string>;
}

/** The input of a run, set before MeshRun's fields are initialized from it (a base class's constructor runs first). */
class RunInput {
  constructor(protected readonly input: ProvisionMeshInput) {}
}

/**
 * One run of a mesh's workflow: its state (the fields, initialized in the order the workflow has
 * always made them: the patch markers first), the handlers it registers and what it does.
 */
class MeshRun extends RunInput {
  private readonly v2 = patched(PATCH_V2);
  private readonly v3 = this.v2 && patched(PATCH_V3);
  private readonly v4 = this.v3 && patched(PATCH_V4);
  private readonly v4drift = this.v3 && patched(PATCH_V4_DRIFT);
  private readonly v5 = this.v4drift && patched(PATCH_V5_TRUST);
  private readonly v6 = this.v5 && patched(PATCH_V6_UPGRADE);

  // The spec and plan the mesh runs: its first, then each one an `apply` made it.
  private spec = upgradeSpec(this.input.spec);

  // Meshes started before preflights existed keep the plan they started with.
  private plan: Plan = buildPlan(this.spec, { preflight: needsPreflight(this.spec) && patched(PATCH_PREFLIGHT) });
  private readonly now = () => new Date(Date.now()).toISOString();
  private readonly status: MeshStatus = this.input.carried ?? {
    mesh: this.spec.name,
    phase: 'provisioning',
    provider: [...new Set(this.spec.clusters.map((c) => c.provider))].join(','),
    clusters: this.spec.clusters.map((c) => c.name),
    startedAt: this.now(),
    // The deadline runs from the start: a mesh never outlives its TTL, not even one still provisioning.
    expiresAt: this.v2 ? new Date(Date.now() + parseDuration(this.spec.ttl)!).toISOString() : undefined,
    steps: this.plan.steps.map((s): StepStatus => ({
      id: s.id,
      kind: s.kind,
      cluster: s.cluster,
      target: s.target,
      state: 'pending',
    })),
    ledger: [],
    checks: [],
    leftBehind: [],
  };
  private readonly stepStatus = (id: string) => this.status.steps.find((s) => s.id === id)!;
  private readonly request = (step: Step) => ({
    mesh: this.spec.name,
    spec: this.spec,
    step: { id: step.id, kind: step.kind, cluster: step.cluster, target: step.target },
  });
  private readonly record = (step: string, resources: Resource[]) => {
    for (const resource of resources) {
      // A step run again (a token renewal, a retry) reports what it already created: one entry is enough.
      const known = this.status.ledger.some(
        (l) => l.step === step && JSON.stringify(l.resource) === JSON.stringify(resource),
      );
      if (!known) this.status.ledger.push({ step, resource, createdAt: this.now() });
    }
  };
  private teardownRequested = false;

  /** Why provisioning was stopped from outside (teardown, expiry), once it was. */
  private stopReason: string | undefined;
  private deadlineVersion = 0;
  private readonly provisioning = new CancellationScope();

  /** Set by `down --abandon-host`: nothing waits on the host any more. */
  private abandonHost = false;

  /** Scopes of the activities waiting on (or running on) the host: an abandon cancels them. */
  private readonly hostScopes = new Set<CancellationScope>();

  /** A due token renewal, which a teardown cancels (the host it waits on may be gone). */
  private renewal: CancellationScope | undefined;

  /** The `apply` in progress (one at a time), and its scope, which a teardown or the deadline cancels. */
  private updating: { record: UpdateRecord; scope: CancellationScope } | undefined;

  /** What each step that ran in the current update reported it applied (all of it: steps apply whole). */
  private readonly ran = new Map<string, Resource[]>();

  /** The drift baseline (one copy: carried across continue-as-new in the input) and when it was taken. */
  private driftBase = this.input.driftBaseline;

  /** Bumped by every change after which the baseline is stale (an apply, a token renewal). */
  private driftStale = 0;

  /** The `driftStale` the baseline was taken at. */
  private driftBaselined = 0;

  /** Bumped when the drift state changes: the live loop's wait wakes on it. */
  private driftVersion = 0;

  /** A baseline being taken, and a drift check in progress (one at a time, never beside an apply). */
  private baselining: Promise<void> | undefined;
  private drifting: { since: string; scope: CancellationScope } | undefined;

  /** When a baseline that failed is tried again (workflow time, ms). */
  private baselineRetryAt = 0;

  /** When an intermediate rotation that failed is tried again by the live loop (workflow time, ms). */
  private rotateRetryAt = 0;

  /** What an upgrade waiting between waves was told (upgrade-decision). */
  private upgradeDecision: UpgradeDecision | undefined;

  /** Whether the run's memo says an automatic rotation failed (list shows it). */
  private rotationFlagged = Boolean(workflowInfo().memo?.rotationDue);
  private readonly hostOptions = (): ActivityOptions =>
    this.status.hostQueue
      ? {
          taskQueue: this.status.hostQueue,
          ...(this.v3 ? { scheduleToStartTimeout: this.input.hostWait ?? HOST_WAIT } : {}),
        }
      : {};
  private readonly stepActivity = (step: Step, summaryText = summary(step)) =>
    // On cancel, wait for the activity to finish or acknowledge: one that completes anyway has
    // created something, and its result (or trace) must reach the ledger to be undone.
    proxyActivities<MeshActivities>({
      ...OPTIONS[step.kind],
      ...(this.v2 ? {} : { heartbeatTimeout: V1_HEARTBEAT[step.kind] }),
      ...this.hostOptions(),
      summary: summaryText,
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    })[STEP_ACTIVITIES[step.kind]];

  /** A rotation's activities, on the host: istiod has 90 s to take up new CA files (in a cluster: a rollout). */
  private readonly trustActivities = (summaryText: string) =>
    proxyActivities<MeshActivities>({
      ...OPTIONS.cacerts,
      startToCloseTimeout: '10 minutes',
      ...this.hostOptions(),
      summary: summaryText,
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    });
  private readonly rotationActivity = (summaryText: string) => this.trustActivities(summaryText).rotateIntermediate;
  private readonly undoActivity = (summaryText: string, onHost = true) =>
    proxyActivities<MeshActivities>({
      ...UNDO_OPTIONS,
      // Release 4: an undo heartbeats every second (runStep), so a lost worker is noticed in 10 s, not 2 minutes.
      ...(this.v4 ? BEAT : {}),
      ...(onHost ? this.hostOptions() : {}),
      summary: summaryText,
    }).undoResource;
  private readonly setPhase = (phase: MeshPhase) => {
    this.status.phase = phase;
    this.phaseConditions(phase);
    upsertSearchAttributes({ [MESH_SEARCH_ATTRIBUTES.phase.name]: [phase] });
    // The Web UI shows it beside the run.
    setCurrentDetails(
      `phase: ${phase}` + (phase === 'updating' && this.updating ? `: ${this.updating.record.summary}` : ''),
    );
  };

  /** The TTL timer's summary in the Web UI. */
  private readonly ttlSummary = () => `TTL: tear down at ${this.status.expiresAt}`;
  private readonly stopProvisioning = (reason: string) => {
    if (this.stopReason !== undefined || this.status.phase !== 'provisioning') return;
    this.stopReason = reason;
    this.provisioning.cancel();
  };

  /** The queries, signals and updates of the run, registered before it starts anything. */
  private registerHandlers(): void {
    // The trust view is computed when asked (it reads the clock): never part of what is carried.
    setHandler(statusQuery, () =>
      this.v5 ? { ...this.status, trust: trustStatus(this.spec, this.status.steps, Date.now()) } : this.status,
    );

    setHandler(teardownSignal, (options?: TeardownOptions) => {
      this.teardownRequested = true;
      if (this.v3 && options?.abandonHost && !this.abandonHost) {
        this.abandonHost = true;
        for (const scope of this.hostScopes) scope.cancel();
      }
      if (this.v3) this.renewal?.cancel();
      this.updating?.scope.cancel(); // an update in progress ends; the teardown undoes what it made too
      this.drifting?.scope.cancel(); // so does a drift repair
      if (this.v2)
        this.stopProvisioning(
          `teardown requested while provisioning${this.abandonHost ? ' (abandoning the host)' : ''}`,
        );
    });

    setHandler(
      extendUpdate,
      (by: string) => {
        // From the deadline the mesh has (its TTL from the start, or an earlier extend), never from now.
        const base = Math.max(Date.parse(this.status.expiresAt ?? this.now()), Date.now());
        this.status.expiresAt = new Date(base + parseDuration(by)!).toISOString();
        this.deadlineVersion++;
        return this.status.expiresAt;
      },
      {
        validator: (by: string) => {
          const ms = parseDuration(by);
          if (ms === undefined || ms <= 0) throw new Error(`"${by}" is not a positive duration such as 30m, 2h or 1d`);
          if (!['ready', 'provisioning', 'kept', 'updating'].includes(this.status.phase))
            throw new Error(`mesh ${this.spec.name} is ${this.status.phase}: nothing to extend`);
          const base = Math.max(Date.parse(this.status.expiresAt ?? this.now()), Date.now());
          if (base + ms - Date.now() > MAX_TTL_MS)
            throw new Error(`a mesh may live at most ${formatDurationMs(MAX_TTL_MS)} from now`);
        },
      },
    );

    setHandler(
      verifyUpdate,
      async (scope?: VerifyScope) => {
        const step = this.plan.steps.find((s) => s.kind === 'verify')!;
        const only = scope?.only?.length ? scope.only : undefined;
        const verify = this.stepActivity(step, `verify ${only ? `${only.join(', ')} ` : ''}(requested)`);
        const out = await this.onHost(() =>
          (verify as MeshActivities['verifyMesh'])({ ...this.request(step), ...(only && { only }) }),
        );
        const fresh = out.checks ?? [];
        this.status.checks = only ? replaceChecks(this.status.checks, fresh, only) : fresh;
        this.status.verifiedAt = this.now();
        return fresh;
      },
      {
        validator: (scope?: VerifyScope) => {
          if (this.status.phase !== 'ready')
            throw new Error(`mesh ${this.spec.name} is ${this.status.phase}: checks run on a ready mesh`);
          const unknown = (scope?.only ?? []).filter((code) => !checkByCode(code));
          if (unknown.length) throw new Error(`no check ${unknown.join(', ')}: \`meshflow checks\` lists the codes`);
        },
      },
    );

    setHandler(specQuery, () => this.spec);

    setHandler(applyUpdate, (req: ApplyRequest) => this.applyChange(req), {
      validator: (req: ApplyRequest) => {
        this.refuseWhileDrifting('apply');
        this.validateApply(req);
      },
    });

    setHandler(driftUpdate, () => this.checkDriftNow('requested'), { validator: this.validateDrift });

    setHandler(rotateUpdate, (req: RotateRequest) => this.rotateNow(req, 'requested'), {
      validator: (req: RotateRequest) => {
        this.refuseWhileDrifting('rotate');
        this.validateRotate(req);
      },
    });

    setHandler(upgradeUpdate, (req: UpgradeRequest) => this.upgradeNow(req), {
      validator: (req: UpgradeRequest) => {
        this.refuseWhileDrifting('upgrade');
        this.validateUpgrade(req);
      },
    });

    setHandler(
      upgradeDecisionUpdate,
      (decision: UpgradeDecision) => {
        this.upgradeDecision = decision;
        return decision === 'continue'
          ? `wave ${this.status.upgrade!.wave + 2} of ${this.status.upgrade!.waves.length} starts`
          : `rolling back the ${this.status.upgrade!.passed} wave(s) made`;
      },
      {
        validator: (decision: UpgradeDecision) => {
          if (decision !== 'continue' && decision !== 'abort')
            throw new Error(`an upgrade is told continue or abort (got ${JSON.stringify(decision)})`);
          if (this.status.upgrade?.stage !== 'awaiting-approval' || this.upgradeDecision !== undefined)
            throw new Error(
              this.status.upgrade
                ? `the upgrade of mesh ${this.spec.name} is ${this.status.upgrade.stage}, not waiting for approval`
                : `mesh ${this.spec.name} has no upgrade in progress`,
            );
        },
      },
    );
  }

  async run(): Promise<MeshStatus> {
    // The copies `up` made are the mesh's trust store entries, as its CAs are (the root-ca step's):
    // recorded now, so they are undone with the mesh even when it fails before that step.
    if (this.v4 && !this.input.carried && copiedFiles(this.spec)) {
      this.record(this.plan.steps.find((s) => s.kind === 'root-ca')!.id, [{ type: 'trust', mesh: this.spec.name }]);
    }
    upsertSearchAttributes({
      [MESH_SEARCH_ATTRIBUTES.name.name]: [this.spec.name],
      [MESH_SEARCH_ATTRIBUTES.provider.name]: [this.status.provider],
      [MESH_SEARCH_ATTRIBUTES.clusterCount.name]: [this.spec.clusters.length],
      [MESH_SEARCH_ATTRIBUTES.phase.name]: [this.status.phase],
    });
    this.registerHandlers();
    // Steps that need this host's state (CA keys, local clusters, kubeconfig files) run on the
    // task queue of the worker that claimed the mesh; the claim is carried across continue-as-new.
    // Release 3: a mesh that needs no host's disk (cloud clusters only, its CAs in a store every
    // worker reads) is claimed by none: its steps run on the shared queue, on any worker.
    if (this.v2 && !this.status.hostQueue && !(this.v3 && this.input.carried)) {
      const host = await proxyActivities<HostActivities>({
        startToCloseTimeout: '1 minute',
        summary: 'claim a worker host',
      }).claimHost();
      if (!this.v3 || needsOneHost(this.spec, host, this.v4)) {
        this.status.hostQueue = host.taskQueue;
        this.status.host = host.host;
      }
    }
    if (!this.input.carried) {
      this.phaseConditions(this.status.phase);
      const outcome = await this.provision();
      // Release 1 closed a kept mesh's workflow; a stop that was asked for has been compensated.
      if ((!this.v2 && outcome === 'kept') || outcome === 'stopped') return this.status;
    }
    await this.live();
    this.setPhase('tearing-down');
    await CancellationScope.nonCancellable(() => this.undoAll());
    this.setPhase(this.status.leftBehind.length ? 'failed' : 'deleted');
    if (this.v2) await condition(allHandlersFinished);
    return this.status;
  }

  /**
   * Runs an activity on the mesh's host. While no worker of the host picks it up, the status says
   * HostUnavailable and the activity is asked again; once one does, the condition goes. An abandon
   * (`down --abandon-host`) ends the wait with HostAbandoned.
   */
  private readonly onHost = async <T>(call: () => Promise<T>): Promise<T> => {
    if (!this.v3 || !this.status.hostQueue) return call();
    for (;;) {
      if (this.abandonHost) throw new HostAbandoned();
      const scope = new CancellationScope();
      this.hostScopes.add(scope);
      try {
        const out = await scope.run(call);
        this.setHostCondition(false);
        return out;
      } catch (err) {
        if (this.abandonHost && (isCancellation(err) || hostTimedOut(err))) throw new HostAbandoned();
        if (!hostTimedOut(err)) throw err;
        this.setHostCondition(true);
      } finally {
        this.hostScopes.delete(scope);
      }
    }
  };

  private readonly setHostCondition = (unavailable: boolean): void => {
    const known = this.status.conditions?.some((c) => c.type === 'HostUnavailable') ?? false;
    if (unavailable === known) return;
    if (unavailable) {
      const host = this.status.host ?? this.status.hostQueue!;
      const message =
        `no worker of host ${host} has picked up a step of mesh ${this.spec.name} ` +
        `for ${this.input.hostWait ?? HOST_WAIT}; ` +
        `its steps wait for it. Start a worker with that host's state directory (or MESHFLOW_HOST_ID=${host}), ` +
        `or run \`meshflow down ${this.spec.name} --abandon-host\` to tear down what any worker can reach`;
      this.status.conditions = [
        ...(this.status.conditions ?? []),
        {
          type: 'HostUnavailable',
          status: 'True',
          reason: 'NoWorkerPolling',
          host,
          since: this.now(),
          lastTransitionTime: this.now(),
          message,
        },
      ];
    } else {
      this.status.conditions = this.status.conditions!.filter((c) => c.type !== 'HostUnavailable');
    }
    const condition = this.status.conditions.find((c) => c.type === 'HostUnavailable');
    // The memo is what `list` and the Web UI's run list read without asking the workflow.
    upsertMemo({ hostUnavailable: condition ? { host: condition.host, since: condition.since } : null });
    setCurrentDetails(
      `phase: ${this.status.phase}` +
        (condition ? `; host ${condition.host} unavailable since ${condition.since}` : ''),
    );
  };

  /** Sets a condition; its transition time moves only when its status changes. */
  private readonly setCondition = (type: MeshCondition['type'], on: boolean, reason: string, message: string): void => {
    const value = on ? 'True' : 'False';
    const known = this.status.conditions?.find((c) => c.type === type);
    const lastTransitionTime = known?.status === value ? known.lastTransitionTime : this.now();
    const next: MeshCondition = { type, status: value, reason, message, lastTransitionTime };
    this.status.conditions = known
      ? this.status.conditions!.map((c) => (c === known ? next : c))
      : [...(this.status.conditions ?? []), next];
  };

  /** Ready, Provisioning and Updating as the phase has them. */
  private readonly phaseConditions = (phase: MeshPhase): void => {
    const failedChecks = this.status.checks.filter((c) => c.status === 'failed').length;
    switch (phase) {
      case 'provisioning':
        this.setCondition('Provisioning', true, 'Provisioning', `running the plan's ${this.plan.steps.length} steps`);
        this.setCondition('Ready', false, 'Provisioning', 'the mesh is being made');
        break;
      case 'ready':
        this.setCondition('Provisioning', false, 'Provisioned', `ready since ${this.status.readyAt ?? this.now()}`);
        this.setCondition('Updating', false, 'Idle', this.lastUpdateText());
        this.setCondition(
          'Ready',
          failedChecks === 0,
          failedChecks ? 'ChecksFailed' : 'Verified',
          failedChecks
            ? `${failedChecks} check(s) failed: see checks`
            : `${this.spec.clusters.length} cluster(s), every check passed or is not supported`,
        );
        break;
      case 'updating':
        this.setCondition('Updating', true, 'Applying', this.updating?.record.summary ?? 'applying a new spec');
        break;
      case 'kept':
        this.setCondition('Provisioning', false, 'Failed', this.status.error ?? 'failed');
        this.setCondition('Ready', false, 'Kept', `kept after a failure (onFailure: keep): ${this.status.error ?? ''}`);
        break;
      default:
        this.setCondition('Provisioning', false, phase === 'compensating' ? 'Failed' : 'Ended', phase);
        this.setCondition('Updating', false, 'Ended', phase);
        this.setCondition('Ready', false, phase === 'deleted' ? 'Deleted' : 'TearingDown', phase);
    }
  };

  private readonly lastUpdateText = (): string => {
    const last = this.status.updates?.at(-1);
    if (!last) return 'no update yet';
    return `last update ${last.id} ${last.state} at ${last.endedAt ?? last.requestedAt}: ${last.summary}`;
  };

  /**
   * Runs the plan: 'ready', or 'kept' when a failure left the mesh as it was (onFailure: keep).
   * A teardown or an expiry is compensated ('stopped'); any other failure too, and then thrown.
   */
  private readonly provision = async (): Promise<'ready' | 'kept' | 'stopped'> => {
    if (this.v2) {
      // A workflow cancel reaches this wait too: that ends it, and the walk's own handling follows.
      this.watchDeadlineWhileProvisioning().catch((err: unknown) => {
        if (!isCancellation(err)) throw err;
      });
    }
    try {
      await this.provisioning.run(() => this.walk());
    } catch (err) {
      this.status.error = this.stopReason ?? (isCancellation(err) ? 'cancelled' : errorText(err));
      const stopped = this.stopReason !== undefined || isCancellation(err);
      if (this.spec.onFailure === 'keep' && !stopped) {
        for (const s of this.status.steps) if (s.state === 'done') s.state = 'kept';
        this.setPhase('kept');
        return 'kept';
      }
      this.setPhase('compensating');
      await CancellationScope.nonCancellable(() => this.undoAll());
      this.setPhase(this.status.leftBehind.length ? 'failed' : 'deleted');
      if (this.stopReason !== undefined) {
        // Asked for (down, expiry): the workflow completes, its result says what was removed.
        await condition(allHandlersFinished);
        return 'stopped';
      }
      if (isCancellation(err)) throw err;
      throw ApplicationFailure.create({
        type: 'MeshProvisioningFailed',
        message:
          `mesh ${this.spec.name} failed: ${this.status.error}. ` +
          (this.status.leftBehind.length
            ? `Could not remove ${this.status.leftBehind.length} resource(s): see status.leftBehind.`
            : 'Everything it created was removed.'),
        nonRetryable: true,
      });
    }
    this.status.readyAt = this.now();
    this.status.expiresAt ??= new Date(Date.now() + parseDuration(this.spec.ttl)!).toISOString();
    this.setPhase('ready');
    return 'ready';
  };

  /** Cancels provisioning when the deadline passes first (extend moves it). */
  private readonly watchDeadlineWhileProvisioning = async (): Promise<void> => {
    while (this.status.phase === 'provisioning' && this.stopReason === undefined) {
      const left = Date.parse(this.status.expiresAt!) - Date.now();
      if (left <= 0)
        return this.stopProvisioning(`the mesh's TTL (${this.spec.ttl}) expired while it was provisioning`);
      const seen = this.deadlineVersion;
      await condition(
        () => this.status.phase !== 'provisioning' || this.stopReason !== undefined || this.deadlineVersion !== seen,
        left,
        { summary: this.ttlSummary() },
      );
    }
  };

  /** Ready or kept: waits for the deadline (which `extend` may move) or a teardown, renewing reader tokens of a ready mesh. */
  private readonly live = async (): Promise<void> => {
    try {
      for (;;) {
        const left = Date.parse(this.status.expiresAt!) - Date.now();
        if (left <= 0 || this.teardownRequested) break;
        const renewIn = this.status.phase === 'ready' ? this.nextRenewal() - Date.now() : Infinity;
        const phase = this.status.phase;
        if (renewIn <= 0) {
          if (this.v3) {
            // In a scope a teardown cancels: a renewal waiting on a host that is gone must not hide it.
            this.renewal = new CancellationScope();
            await this.renewal.run(() => this.renewTokens());
            this.renewal = undefined;
          } else await this.renewTokens();
          if (this.v4drift) this.driftAfterChange(); // a renewal re-applies the link's remote secret
          continue;
        }
        const driftIn = this.v4drift ? this.driftDueIn() : Infinity;
        if (driftIn <= 0) {
          await this.driftTick();
          continue;
        }
        const dropAt = this.status.rootRotation?.dropAt;
        const dropIn =
          this.v5 && this.status.phase === 'ready' && dropAt
            ? Math.max(Date.parse(dropAt), this.rotateRetryAt) - Date.now()
            : Infinity;
        if (dropIn <= 0) {
          const result = await this.rotateNow({ what: 'root', finish: true }, 'expiry');
          if (result.update.state !== 'applied') this.rotateRetryAt = Date.now() + ROTATION_RETRY_MS;
          continue;
        }
        const rotateIn =
          this.v5 && this.status.phase === 'ready'
            ? Math.min(this.nextRotation(), Date.now() + dropIn) - Date.now()
            : Infinity;
        if (rotateIn <= 0) {
          await this.rotateDue();
          continue;
        }
        const seen = this.deadlineVersion;
        const seenDrift = this.driftVersion;
        const seenSpec = this.spec;
        await condition(
          () =>
            this.teardownRequested ||
            this.deadlineVersion !== seen ||
            this.status.phase !== phase || // an update began or ended: renewals wait for a ready mesh
            // new drift state or settings
            (this.v4drift && (this.driftVersion !== seenDrift || this.spec !== seenSpec)) ||
            workflowInfo().continueAsNewSuggested,
          Math.min(left, renewIn, driftIn, rotateIn),
          {
            summary:
              left <= Math.min(renewIn, driftIn, rotateIn)
                ? this.ttlSummary()
                : rotateIn <= Math.min(renewIn, driftIn)
                  ? rotateIn >= dropIn
                    ? `drop the old root (its grace ends), then ${this.ttlSummary()}`
                    : `rotate intermediates (trust.rotateBefore ${this.spec.trust.rotateBefore}), ` +
                      `then ${this.ttlSummary()}`
                  : renewIn <= driftIn
                    ? `renew reader tokens, then ${this.ttlSummary()}`
                    : `check for drift (every ${this.spec.drift.every}), then ${this.ttlSummary()}`,
          },
        );
        if (workflowInfo().continueAsNewSuggested && !this.teardownRequested) {
          await condition(allHandlersFinished); // a running verify or extend finishes first
          // A teardown that arrived meanwhile is not carried into a new run: it is served here.
          if (this.v2 && this.teardownRequested) break;
          // A stale baseline is not carried: the new run takes a fresh one.
          const driftBaseline = this.v4drift && this.driftBaselined === this.driftStale ? this.driftBase : undefined;
          await continueAsNew<typeof provisionMesh>({
            spec: this.spec,
            carried: this.status,
            hostWait: this.input.hostWait,
            ...(driftBaseline ? { driftBaseline } : {}),
          });
        }
      }
    } catch (err) {
      if (!isCancellation(err)) throw err;
    }
    if (this.updating) {
      // The deadline or a teardown ends an update in progress; the teardown then undoes everything.
      this.updating.scope.cancel();
      await condition(() => this.updating === undefined);
    }
    if (this.drifting) {
      this.drifting.scope.cancel();
      await condition(() => this.drifting === undefined);
    }
  };

  /** When the first reader token that must outlive the mesh's deadline is due for renewal (Infinity: none is). */
  private readonly nextRenewal = (): number => {
    const deadline = Date.parse(this.status.expiresAt!) + TOKEN_MARGIN_MS;
    const due = this.status.steps
      .filter((s) => s.kind === 'link' && s.outputs?.tokenRenewAt && Date.parse(s.outputs.tokenExpiresAt) < deadline)
      .map((s) => Date.parse(s.outputs!.tokenRenewAt));
    return Math.min(Infinity, ...due);
  };

  /** Links again the pairs whose tokens are due: a fresh token replaces the old one in the remote secret. */
  private readonly renewTokens = async (): Promise<void> => {
    const due = this.plan.steps.filter(
      (step) => step.kind === 'link' && Date.parse(this.stepStatus(step.id).outputs?.tokenRenewAt ?? '') <= Date.now(),
    );
    await Promise.all(
      due.map(async (step) => {
        const s = this.stepStatus(step.id);
        try {
          const renew = this.stepActivity(step, `renew token ${step.cluster} -> ${step.target}`);
          const out = await this.onHost(() => renew(this.request(step)));
          this.record(step.id, out.resources);
          s.outputs = { ...out.outputs, renewedAt: this.now() };
          s.lastError = undefined;
        } catch (err) {
          this.record(step.id, tracedResources(err));
          s.lastError = `token renewal failed, retrying in ${formatDurationMs(RENEWAL_RETRY_MS)}: ${errorText(err)}`;
          s.outputs = { ...s.outputs, tokenRenewAt: new Date(Date.now() + RENEWAL_RETRY_MS).toISOString() };
        }
      }),
    );
  };

  /**
   * Runs the pending steps of the plan whose dependencies are done (all of them when the mesh is
   * made; an update's added and changed steps later). With `verdict`, failed checks fail the walk.
   */
  private readonly walk = async (verdict = true): Promise<void> => {
    const done = new Set(this.status.steps.filter((s) => s.state === 'done').map((s) => s.id));
    const running = new Map<string, Promise<void>>();
    let failure: unknown;
    /** The steps of this walk: the first failure cancels them (a GKE create may otherwise run on for 45 minutes). */
    const steps = new CancellationScope();
    /** Why the running steps were cancelled, once a step failed. */
    let failedStep: string | undefined;
    const start = (step: Step) => {
      const s = this.stepStatus(step.id);
      s.state = 'running';
      s.startedAt = this.now();
      const act = this.stepActivity(step);
      const p = (async () => {
        try {
          const out: StepOutcome = await (this.v3
            ? steps.run(() => this.onHost(() => act(this.request(step))))
            : act(this.request(step)));
          // Record what was created before anything else can fail: it must be undone whatever happens next.
          this.record(step.id, out.resources);
          this.ran.set(step.id, out.resources);
          if (out.checks) this.status.checks.push(...out.checks);
          s.outputs = out.outputs;
          s.attempts = out.attempt;
          s.state = 'done';
          done.add(step.id);
        } catch (err) {
          // A step that fails, is cancelled or times out says in its trace what it may have created.
          this.record(step.id, tracedResources(err));
          s.state = 'failed';
          const cancelledBy = this.stopReason ?? (failedStep && `step ${failedStep} failed`);
          s.lastError = isCancellation(err) && cancelledBy ? `cancelled: ${cancelledBy}` : errorText(err);
          failure ??= isCancellation(err) ? err : new Error(`step ${step.id}: ${s.lastError}`);
          if (this.v3 && !isCancellation(err) && failedStep === undefined && this.spec.onFailure !== 'keep') {
            // The steps still running are cancelled; each reports what it made before compensation
            // starts. A mesh kept on failure is left to be looked at as it gets: its steps finish.
            failedStep = step.id;
            steps.cancel();
          }
        } finally {
          s.endedAt = this.now();
          running.delete(step.id);
        }
      })();
      running.set(step.id, p);
    };
    for (;;) {
      if (failure === undefined && !this.teardownRequested && this.stopReason === undefined) {
        for (const step of this.plan.steps) {
          if (this.stepStatus(step.id).state === 'pending' && step.dependsOn.every((d) => done.has(d))) start(step);
        }
      }
      if (running.size === 0) break;
      // Steps already running finish (and record what they created) before compensation starts.
      await Promise.race(running.values());
    }
    if (failure !== undefined) throw failure;
    if (this.teardownRequested)
      throw ApplicationFailure.create({
        type: 'TeardownRequested',
        message: 'teardown requested while provisioning',
        nonRetryable: true,
      });
    const failed = this.status.checks.filter((c) => c.status === 'failed');
    if (verdict && failed.length) {
      throw ApplicationFailure.create({
        type: 'VerificationFailed',
        message: failed.map((c) => `${c.name}${c.cluster ? ` (${c.cluster})` : ''}: ${c.detail}`).join('; '),
        nonRetryable: true,
      });
    }
  };

  // ---------------------------------------------------------------------------------------------
  // rotate: new credentials for a ready mesh

  /** When the first intermediate is due for rotation (Infinity: none is, or rotateBefore is off). */
  private readonly nextRotation = (): number => {
    const due = this.rotationDue();
    return due.length ? Math.max(Math.min(...due.map((d) => d.at)), this.rotateRetryAt) : Infinity;
  };

  /** Each cluster's intermediate and when it is due for rotation (its expiry less trust.rotateBefore). */
  private readonly rotationDue = (): Array<{ cluster: string; at: number }> => {
    const before = this.spec.trust.rotateBefore === 'off' ? undefined : parseDuration(this.spec.trust.rotateBefore);
    if (before === undefined) return [];
    return this.status.steps
      .filter(
        (s) => s.kind === 'cacerts' && s.outputs?.caNotAfter && this.spec.clusters.some((c) => c.name === s.cluster),
      )
      .map((s) => ({ cluster: s.cluster!, at: Date.parse(s.outputs!.caNotAfter) - before }));
  };

  /** The live loop's rotation: the intermediates now within rotateBefore of expiry; a failure waits a while. */
  private readonly rotateDue = async (): Promise<void> => {
    const before = parseDuration(this.spec.trust.rotateBefore)!;
    const joinWithin = patched(PATCH_ROTATE_TOGETHER) ? before / 10 : 0;
    const clusters = this.rotationDue()
      .filter((d) => d.at <= Date.now() + joinWithin)
      .map((d) => d.cluster);
    const result = await this.rotateNow({ what: 'intermediates', clusters }, 'expiry');
    if (result.update.state !== 'applied') {
      this.rotateRetryAt = Date.now() + ROTATION_RETRY_MS;
      // `meshflow list` flags the mesh while an intermediate it should have rotated is left.
      const retryAt = new Date(this.rotateRetryAt).toISOString();
      upsertMemo({ rotationDue: { clusters, retryAt, error: (result.update.error ?? '').slice(0, 300) } });
      this.rotationFlagged = true;
    } else if (this.rotationFlagged) {
      upsertMemo({ rotationDue: null });
      this.rotationFlagged = false;
    }
  };

  /** Refuses an operation that needs a ready mesh, naming the phase it is in. */
  private readonly refuseUnlessReady = (what: string): void => {
    if (this.teardownRequested || this.status.phase !== 'ready')
      throw new Error(
        `mesh ${this.spec.name} is ${this.teardownRequested ? 'tearing-down' : this.status.phase}: ${what}`,
      );
  };

  /** An update (apply, rotate) is refused while another runs, naming it. */
  private readonly refuseWhileUpdating = (): void => {
    if (!this.updating) return;
    const r = this.updating.record;
    throw new Error(
      `update ${r.id} (${r.summary}) has been running since ${r.requestedAt}: one update at a time; ` +
        `wait for it (meshflow status ${this.spec.name})`,
    );
  };

  private readonly validateRotate = (req: RotateRequest): void => {
    if (!this.v5)
      throw new Error(
        `mesh ${this.spec.name} was started by an earlier meshflow release, which cannot rotate credentials of a ` +
          'running mesh: tear it down and bring it up again to have it',
      );
    this.refuseWhileUpdating();
    if (this.renewal) throw new Error(`mesh ${this.spec.name} is renewing reader tokens: rotate in a moment`);
    this.refuseUnlessReady('credentials rotate on a ready mesh');
    if (!req || !(ROTATABLE as readonly string[]).includes(req.what))
      throw new Error(`what to rotate must be one of ${ROTATABLE.join(', ')} (got ${JSON.stringify(req?.what)})`);
    const names = this.spec.clusters.map((c) => c.name);
    const unknown = (req.clusters ?? []).filter((c) => !names.includes(c));
    if (unknown.length)
      throw new Error(`mesh ${this.spec.name} has no cluster ${unknown.join(', ')}; its clusters: ${names.join(', ')}`);
    if (req.newRoot !== undefined && req.what !== 'root')
      throw new Error(`--root-cert and --root-key give a new root: they are for \`rotate ${this.spec.name} root\``);
    if (req.what === 'root') this.validateRootRotation(req);
    if (req.what === 'readers' && !this.rotationSteps(req).length)
      throw new Error(
        `mesh ${this.spec.name} has no reader credentials` +
          `${req.clusters?.length ? ` for ${req.clusters.join(', ')}` : ''} ` +
          '(one cluster, or no links): nothing to rotate',
      );
  };

  private readonly validateRootRotation = (req: RotateRequest): void => {
    const r = this.status.rootRotation;
    const user = this.spec.trust.rootCa;
    // Release 6: a mesh with the user's own root rotates it to the one the user gives.
    if (user && !this.v6)
      throw new Error(
        `mesh ${this.spec.name} uses your own root CA (trust.rootCa) and was started by an earlier meshflow release, ` +
          'which rotates only a root it made: rotate the intermediates your root signs with ' +
          '`meshflow rotate NAME intermediates`, or bring the mesh up again to rotate your root',
      );
    if (req.newRoot !== undefined && !user)
      throw new Error(
        `mesh ${this.spec.name} has no trust.rootCa: meshflow makes its own root: drop --root-cert and --root-key`,
      );
    if (req.newRoot !== undefined && (typeof req.newRoot.stored !== 'string' || !req.newRoot.stored))
      throw new Error('the new root must be the trust store entry the client copied it to (newRoot.stored)');
    if (req.newRoot !== undefined && req.finish)
      throw new Error('--finish drops the old root of the rotation under way: drop --root-cert and --root-key');
    if (req.clusters?.length) throw new Error('a root rotation covers every cluster: drop --cluster');
    if (req.grace !== undefined) {
      const ms = parseDuration(req.grace);
      if (ms === undefined || ms > MAX_TTL_MS) throw new Error(`grace "${req.grace}" is not a duration of 0s to 30d`);
    }
    if (req.finish && r?.stage !== 'switched')
      throw new Error(
        r
          ? `the root rotation to ${r.newRoot} has not switched every intermediate yet: run \`rotate root\` again`
          : `mesh ${this.spec.name} has no root rotation waiting to drop its old root`,
      );
    if (!req.finish && r?.stage === 'switched')
      throw new Error(
        `the root rotation to ${r.newRoot} waits to drop the old root ${r.oldRoot} at ${r.dropAt}: ` +
          'finish it now with `meshflow rotate NAME root --finish`, or let it',
      );
    if (user && !req.finish && req.newRoot === undefined && !r?.userRoot)
      throw new Error(
        `mesh ${this.spec.name} uses your own root CA (trust.rootCa): meshflow does not make one; give the new root ` +
          `with \`meshflow rotate ${this.spec.name} root --root-cert FILE --root-key FILE [--root-chain FILE]\``,
      );
    if (req.newRoot !== undefined && r?.userRoot)
      throw new Error(
        `the root rotation to ${r.newRoot} stopped before every intermediate was switched: take it up with ` +
          `\`meshflow rotate ${this.spec.name} root\` (without --root-cert)`,
      );
  };

  /** The steps a rotation runs again: the clusters' cacerts, or the links from or to them. */
  private readonly rotationSteps = (req: RotateRequest): Step[] => {
    const clusters = new Set(req.clusters?.length ? req.clusters : this.spec.clusters.map((c) => c.name));
    return req.what !== 'readers'
      ? this.plan.steps.filter((s) => s.kind === 'cacerts' && clusters.has(s.cluster!))
      : this.plan.steps.filter((s) => s.kind === 'link' && (clusters.has(s.cluster!) || clusters.has(s.target!)));
  };

  /**
   * Rotates what `req` names, cluster by cluster at once, then verifies the mesh. An intermediate
   * that its istiod does not take up is put back (the activity says so) and the update fails with
   * the others done; readers get fresh tokens in their remote secrets. A teardown or the deadline
   * cancels it, and the teardown undoes everything as ever.
   */
  private readonly rotateNow = async (req: RotateRequest, trigger: 'requested' | 'expiry'): Promise<ApplyResult> => {
    const steps = this.rotationSteps(req);
    const clusters = req.clusters?.length ? req.clusters : this.spec.clusters.map((c) => c.name);
    const rec: UpdateRecord = {
      id: currentUpdateInfo()?.id ?? `rotate-${(this.status.updates?.length ?? 0) + 1}`,
      requestedAt: this.now(),
      state: 'running',
      summary:
        req.what === 'root'
          ? req.finish
            ? `rotate root: drop the old root ${this.status.rootRotation?.oldRoot}` +
              (trigger === 'expiry' ? ' (its grace ended)' : ' (requested)')
            : `rotate root: every cluster trusts a new root beside the old, intermediates from the new one; ` +
              `the old root is dropped after ${req.grace ?? ROOT_GRACE}`
          : `rotate ${req.what} of ${clusters.join(', ')}` +
            (trigger === 'expiry'
              ? ` (due: within trust.rotateBefore, ${this.spec.trust.rotateBefore}, of expiry)`
              : ''),
      added: [],
      rerun: steps.map((s) => s.id),
      removed: [],
    };
    this.status.updates = [...(this.status.updates ?? []), rec].slice(-20);
    const scope = new CancellationScope();
    this.updating = { record: rec, scope };
    this.setPhase('updating');
    const failures: string[] = [];
    try {
      await scope.run(async () => {
        if (req.what === 'root') await this.rootStages(req, steps, failures);
        else await Promise.all(steps.map((step) => this.rotateStep(step, req.what, failures)));
        await this.runVerify(`verify (after rotating ${req.what})`);
        const failed = this.status.checks.filter((c) => c.status === 'failed');
        if (failed.length)
          failures.push(
            'verify failed after the rotation: ' +
              failed.map((c) => `${c.name}${c.cluster ? ` (${c.cluster})` : ''}: ${c.detail}`).join('; '),
          );
      });
      rec.state = failures.length ? 'failed' : 'applied';
      if (failures.length) rec.error = failures.join('; ');
    } catch (err) {
      if (isCancellation(err) || this.teardownRequested) {
        rec.state = 'cancelled';
        rec.error = this.teardownRequested ? 'teardown requested during the rotation' : "the mesh's TTL expired";
      } else {
        rec.state = 'failed';
        rec.error = [...failures, errorText(err)].join('; ');
      }
    } finally {
      rec.endedAt = this.now();
      this.updating = undefined;
      if (this.status.phase === 'updating') this.setPhase('ready');
      this.driftAfterChange(); // new secrets: the baseline is taken again
    }
    if (rec.state === 'cancelled') throw ApplicationFailure.create({ type: 'UpdateCancelled', message: rec.error });
    return { update: rec, phase: this.status.phase, clusters: this.status.clusters, checks: this.status.checks };
  };

  /**
   * A root rotation, in stages that each keep every cluster trusting every other's certificates:
   * (1) a new root is made and every cluster trusts it beside the old one; (2) every intermediate
   * is made anew from the new root; then, after the grace (or `--finish`), (3) the old root leaves
   * the store and every cluster's bundle. A stage that fails on a cluster stops before the next:
   * running `rotate root` again takes it up where it stopped.
   */
  private readonly rootStages = async (req: RotateRequest, cacerts: Step[], failures: string[]): Promise<void> => {
    const rootStep = this.plan.steps.find((s) => s.kind === 'root-ca')!;
    const rs = this.stepStatus(rootStep.id);
    const refresh = (roots: string[]) =>
      Promise.all(
        cacerts.map(async (step) => {
          try {
            const act = this.trustActivities(`trust roots ${roots.join(' + ')} in ${step.cluster}`).refreshTrust;
            const out = await this.onHost(() => act({ ...this.request(step), roots }));
            this.record(step.id, out.resources);
            this.stepStatus(step.id).outputs = { ...this.stepStatus(step.id).outputs, ...out.outputs };
          } catch (err) {
            if (isCancellation(err)) throw err;
            this.record(step.id, tracedResources(err));
            failures.push(`${step.id}: ${errorText(err)}`);
          }
        }),
      );
    const stop = (stage: string) => {
      if (failures.length) throw new Error(`root rotation stopped at ${stage}: ${failures.join('; ')}`);
    };
    const r = this.status.rootRotation;
    if (req.finish) {
      const retire = this.trustActivities(`drop the old root ${r!.oldRoot}`).retireRoots;
      await this.onHost(() => retire({ mesh: this.spec.name, spec: this.spec, generation: r!.to }));
      await refresh([r!.userRoot?.after ?? r!.newRoot]);
      stop('dropping the old root');
      this.status.rootRotation = undefined;
      return;
    }
    const from = r?.from ?? Number(rs.outputs?.rootGeneration ?? '1');
    const to = r?.to ?? from + 1;
    const oldRoot = r?.oldRoot ?? rs.outputs?.rootFingerprint ?? '';
    let newRoot: string;
    let userRoot = r?.userRoot;
    let rootNotAfter: string | undefined;
    if (this.spec.trust.rootCa && userRoot) {
      // Taken up again: the new root was checked and is in every bundle's store already.
      newRoot = r!.newRoot;
      rootNotAfter = r!.newRootNotAfter;
    } else {
      const next = req.newRoot;
      const add = this.trustActivities(
        next ? `check the new root CA ${next.certFile ?? next.stored}` : `make root CA generation ${to}`,
      ).addRoot;
      const made = await this.onHost(() =>
        add({ mesh: this.spec.name, spec: this.spec, generation: to, ...(next ? { rootCa: next } : {}) }),
      );
      newRoot = made.outputs!.rootFingerprint;
      rootNotAfter = made.outputs!.rootNotAfter;
      if (next) userRoot = { new: next, trusted: made.outputs!.trustedRoots.split(','), after: made.outputs!.newTop };
    }
    this.status.rootRotation = {
      from,
      to,
      oldRoot,
      newRoot,
      stage: 'trusting',
      startedAt: r?.startedAt ?? this.now(),
      ...(userRoot ? { userRoot, newRootNotAfter: rootNotAfter } : {}),
    };
    await refresh(userRoot?.trusted ?? [oldRoot, newRoot]);
    stop('trusting both roots');
    if (userRoot) {
      // From here the new root signs: every intermediate made from now on (this switch, a cluster an
      // apply adds, a rotation) and the trust-chain check take the spec's root; the old one stays in
      // the store, so every bundle keeps it until the rotation finishes.
      const { stored, certFile, keyFile, chainFile } = userRoot.new;
      this.spec = {
        ...this.spec,
        trust: {
          ...this.spec.trust,
          rootCa: {
            stored,
            ...(certFile !== undefined ? { certFile } : {}),
            ...(keyFile !== undefined ? { keyFile } : {}),
            ...(chainFile !== undefined ? { chainFile } : {}),
          },
        },
      };
    }
    await Promise.all(cacerts.map((step) => this.rotateStep(step, 'intermediates', failures)));
    stop('switching the intermediates to the new root');
    rs.outputs = {
      ...rs.outputs,
      rootGeneration: String(to),
      rootFingerprint: newRoot,
      rootNotAfter: rootNotAfter ?? '',
      previousRoot: oldRoot,
      ...(userRoot ? { root: `user-provided ${userRoot.new.certFile ?? '(PEM)'}` } : {}),
      rotatedAt: this.now(),
    };
    const grace = parseDuration(req.grace ?? ROOT_GRACE)!;
    this.status.rootRotation = {
      ...this.status.rootRotation,
      stage: 'switched',
      dropAt: new Date(Date.now() + grace).toISOString(),
    };
  };

  /** One cluster's intermediate, or one link's token, rotated; a failure is noted, the others go on. */
  private readonly rotateStep = async (step: Step, what: RotateRequest['what'], failures: string[]): Promise<void> => {
    const s = this.stepStatus(step.id);
    try {
      if (what !== 'readers') {
        const generation = Number(s.outputs?.caGeneration ?? '1') + 1;
        const act = this.rotationActivity(`rotate the intermediate CA of ${step.cluster} (generation ${generation})`);
        const out = await this.onHost(() => act({ ...this.request(step), generation }));
        this.record(step.id, out.resources);
        s.outputs = { ...s.outputs, ...out.outputs, rotatedAt: this.now() };
      } else {
        const act = this.stepActivity(step, `rotate the reader token ${step.cluster} -> ${step.target}`);
        const out = await this.onHost(() => act(this.request(step)));
        this.record(step.id, out.resources);
        s.outputs = { ...out.outputs, rotatedAt: this.now() };
      }
      s.lastError = undefined;
    } catch (err) {
      if (isCancellation(err)) throw err;
      this.record(step.id, tracedResources(err));
      failures.push(`${step.id}: ${errorText(err)}`);
    }
  };

  // ---------------------------------------------------------------------------------------------
  // upgrade: another Istio version, canary by revision, wave by wave

  private readonly validateUpgrade = (req: UpgradeRequest): void => {
    if (!this.v6)
      throw new Error(
        `mesh ${this.spec.name} was started by an earlier meshflow release, which cannot upgrade Istio in place: ` +
          'tear it down and bring it up again on the version you want',
      );
    this.refuseWhileUpdating();
    if (this.renewal) throw new Error(`mesh ${this.spec.name} is renewing reader tokens: upgrade in a moment`);
    this.refuseUnlessReady('Istio is upgraded on a ready mesh');
    if (!req || typeof req.to !== 'string' || !ISTIO_VERSION_PATTERN.test(req.to))
      throw new Error(
        `--to ${JSON.stringify(req?.to)} is not a version meshflow pins a build of: ` +
          `a patch release of ${ISTIO_LINES} (meshflow doctor lists them)`,
      );
    if (req.to === this.spec.istio.version || revisionOf(req.to) === this.spec.istio.revision)
      throw new Error(`mesh ${this.spec.name} runs Istio ${this.spec.istio.version} already`);
    this.upgradeWaves(req);
  };

  /** The clusters of each wave: the request's primaries (or one a wave), each with its remotes. */
  private readonly upgradeWaves = (req: UpgradeRequest): string[][] => {
    const primaries = this.spec.clusters.filter((c) => c.role !== 'remote').map((c) => c.name);
    const waves = req.waves?.length ? req.waves : primaries.map((p) => [p]);
    const seen = new Set<string>();
    for (const wave of waves) {
      if (!Array.isArray(wave) || !wave.length) throw new Error('every wave names one or more primaries');
      for (const name of wave) {
        const c = this.spec.clusters.find((x) => x.name === name);
        if (!c)
          throw new Error(`mesh ${this.spec.name} has no cluster ${name}; its primaries: ${primaries.join(', ')}`);
        if (c.role === 'remote')
          throw new Error(`${name} is a remote: it is upgraded in the wave of its primary ${c.primary}`);
        if (seen.has(name)) throw new Error(`${name} is in two waves`);
        seen.add(name);
      }
    }
    const missing = primaries.filter((p) => !seen.has(p));
    if (missing.length) throw new Error(`every primary must be in a wave: ${missing.join(', ')} is in none`);
    return waves.map((wave) => [
      ...wave,
      ...this.spec.clusters.filter((c) => c.role === 'remote' && wave.includes(c.primary!)).map((c) => c.name),
    ]);
  };

  /** An upgrade activity on a cluster's control plane: the revision `r` of its version. */
  private readonly revisionCall = (
    what: 'installRevision' | 'switchRevision' | 'stopRevision',
    cluster: string,
    r: { version: string; revision?: string },
    summaryText: string,
  ): Promise<StepOutcome> => {
    const step = this.plan.steps.find((s) => s.kind === 'control-plane' && s.cluster === cluster)!;
    const act = proxyActivities<MeshActivities>({
      ...OPTIONS['control-plane'],
      ...this.hostOptions(),
      summary: summaryText,
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    })[what];
    return this.onHost(() => act({ ...this.request(step), version: r.version, revision: r.revision }));
  };

  /** Runs `fn` on each cluster at once (primaries before their remotes); failures are collected, not thrown. */
  private readonly eachCluster = async (
    clusters: string[],
    failures: string[],
    fn: (cluster: string) => Promise<void>,
  ): Promise<void> => {
    const isRemote = (c: string) => this.spec.clusters.find((x) => x.name === c)?.role === 'remote';
    for (const group of [clusters.filter((c) => !isRemote(c)), clusters.filter(isRemote)]) {
      await Promise.all(
        group.map(async (c) => {
          try {
            await fn(c);
          } catch (err) {
            if (isCancellation(err)) throw err;
            failures.push(`${c}: ${errorText(err)}`);
          }
        }),
      );
    }
  };

  /** A revision call of a wave, whose resources (also those a failure traced) are recorded under upgrade:<cluster>. */
  private readonly upgradeCall = async (
    call: 'installRevision' | 'switchRevision',
    c: string,
    to: UpgradeRun['to'],
    summaryText: string,
  ): Promise<void> => {
    try {
      const out = await this.revisionCall(call, c, to, summaryText);
      this.record(`upgrade:${c}`, out.resources);
    } catch (err) {
      this.record(`upgrade:${c}`, tracedResources(err));
      throw err;
    }
  };

  /** One wave: install, switch, verify; what failed is in `failures`. */
  private readonly runWave = async (
    u: UpgradeRun,
    clusters: string[],
    i: number,
    failures: string[],
  ): Promise<void> => {
    const of = `wave ${i + 1}/${u.waves.length}`;
    u.up.stage = 'installing';
    await this.eachCluster(clusters, failures, (c) =>
      this.upgradeCall('installRevision', c, u.to, `install revision ${u.to.revision} in ${c} (${of})`),
    );
    if (failures.length) return;
    u.up.stage = 'switching';
    await this.eachCluster(clusters, failures, (c) => {
      u.switched.add(c);
      return this.upgradeCall('switchRevision', c, u.to, `move ${c}'s default tag to ${u.to.revision} (${of})`);
    });
    if (failures.length) return;
    u.up.stage = 'verifying';
    await this.runVerify(`verify (upgrade ${of}: ${clusters.join(', ')} on ${u.to.revision})`);
    const failed = this.status.checks.filter((c) => c.status === 'failed');
    if (failed.length)
      failures.push(
        'verify failed: ' + failed.map((c) => `${c.name}${c.cluster ? ` (${c.cluster})` : ''}: ${c.detail}`).join('; '),
      );
  };
  /**
   * Every touched cluster back on the old revision, newest wave first: its tag back (workloads
   * restarted), the new revision's own objects undone, its istiod stopped; then verify.
   */
  private readonly rollBackUpgrade = async (u: UpgradeRun, clusters: string[], r: UpdateRecord): Promise<void> => {
    await CancellationScope.nonCancellable(async () => {
      u.up.stage = 'rolling-back';
      const failures: string[] = [];
      await this.eachCluster([...clusters].reverse(), failures, async (c) => {
        if (u.switched.has(c)) {
          const back = `move ${c}'s default tag back to ${revisionLabel(u.from.revision)}`;
          const out = await this.revisionCall('switchRevision', c, u.from, back);
          this.record(`control-plane:${c}`, out.resources);
        }
        await this.undoSome(this.exclusiveEntries(`upgrade:${c}`, c, { dropShared: true }));
        const left = this.status.ledger.filter((l) => l.step === `upgrade:${c}`);
        if (left.length)
          throw new Error(
            `${left.length} resource(s) of revision ${u.to.revision} could not be removed: see leftBehind`,
          );
        await this.revisionCall('stopRevision', c, u.to, `stop istiod ${u.to.revision} of ${c}`);
      });
      await this.runVerify(`verify (upgrade rolled back to ${revisionLabel(u.from.revision)})`);
      const failed = this.status.checks.filter((c) => c.status === 'failed');
      if (failures.length || failed.length) {
        r.state = 'failed';
        r.error =
          `${r.error}; rolling back failed too: ` +
          [...failures, ...failed.map((c) => `${c.name}${c.cluster ? ` (${c.cluster})` : ''}: ${c.detail}`)].join('; ');
      } else {
        r.state = 'rolled-back';
        const back = `Istio ${u.from.version} (revision ${revisionLabel(u.from.revision)})`;
        r.error = `${r.error}; rolled back: every cluster runs ${back} again`;
      }
    });
  };

  /**
   * Takes the mesh to another Istio version, canary by revision. Each wave: the new revision's
   * control plane installed beside the old one on its clusters, their default tag moved to it and
   * their workloads restarted (so that it injects them), then the mesh verified. A wave that fails
   * is rolled back with every wave before it (tags back, workloads restarted, the new revision's
   * objects undone): the mesh stays ready on the old revision. When every wave passed, the old
   * revision's objects and istiods are removed, the east-west gateways move to the new version in
   * place, and the mesh is verified. A teardown or the deadline ends it; the teardown undoes all.
   */
  private readonly upgradeNow = async (req: UpgradeRequest): Promise<ApplyResult> => {
    const from = { version: this.spec.istio.version, revision: this.spec.istio.revision };
    const to = { version: req.to, revision: revisionOf(req.to) };
    const waves = this.upgradeWaves(req);
    const rec: UpdateRecord = {
      id: currentUpdateInfo()?.id ?? `upgrade-${(this.status.updates?.length ?? 0) + 1}`,
      requestedAt: this.now(),
      state: 'running',
      summary:
        `upgrade Istio ${from.version} (revision ${revisionLabel(from.revision)}) to ${to.version} ` +
        `(revision ${to.revision}) in ${waves.length} wave(s): ${waves.map((w) => w.join('+')).join(', ')}` +
        (req.approveEach ? ', approving each' : ''),
      added: [],
      rerun: [],
      removed: [],
    };
    this.status.updates = [...(this.status.updates ?? []), rec].slice(-20);
    const up: UpgradeState = {
      from,
      to,
      waves,
      wave: 0,
      passed: 0,
      stage: 'installing',
      approveEach: Boolean(req.approveEach),
      startedAt: this.now(),
    };
    this.status.upgrade = up;
    this.upgradeDecision = undefined;
    const scope = new CancellationScope();
    this.updating = { record: rec, scope };
    this.setPhase('updating');
    /** The clusters that got (or began to get) the new revision: what a rollback takes back. */
    const touched: string[] = [];
    /** Those whose tag began to move: a rollback moves it back (and restarts their workloads) first. */
    const switched = new Set<string>();
    const u: UpgradeRun = { from, to, waves, up, switched };
    try {
      await scope.run(async () => {
        for (let i = 0; i < waves.length; i++) {
          up.wave = i;
          const failures: string[] = [];
          touched.push(...waves[i]);
          await this.runWave(u, waves[i], i, failures);
          if (failures.length) {
            rec.error = `wave ${i + 1} (${waves[i].join(', ')}) failed: ${failures.join('; ')}`;
            await this.rollBackUpgrade(u, touched, rec);
            return;
          }
          up.passed = i + 1;
          if (up.approveEach && i < waves.length - 1) {
            up.stage = 'awaiting-approval';
            up.awaitingSince = this.now();
            this.setCondition(
              'Updating',
              true,
              'AwaitingApproval',
              `wave ${i + 1} of ${waves.length} passed; waiting for ` +
                `\`meshflow upgrade ${this.spec.name} --continue\` (or --abort)`,
            );
            setCurrentDetails(`phase: updating: upgrade waits for approval after wave ${i + 1} of ${waves.length}`);
            await condition(() => this.upgradeDecision !== undefined, {
              summary: 'wait for upgrade --continue or --abort',
            });
            const decision = this.upgradeDecision;
            this.upgradeDecision = undefined;
            up.awaitingSince = undefined;
            if (decision === 'abort') {
              rec.error = `aborted after wave ${i + 1} of ${waves.length}`;
              await this.rollBackUpgrade(u, touched, rec);
              return;
            }
          }
        }
        await this.finishUpgrade(from, to, rec);
      });
    } catch (err) {
      if (isCancellation(err) || this.teardownRequested) {
        rec.state = 'cancelled';
        rec.error =
          (this.teardownRequested ? 'teardown requested during the upgrade' : "the mesh's TTL expired") +
          ': the teardown removes both revisions';
      } else {
        rec.state = 'failed';
        rec.error = [rec.error, errorText(err)].filter(Boolean).join('; ');
      }
    } finally {
      rec.endedAt = this.now();
      this.updating = undefined;
      this.status.upgrade = undefined;
      if (this.status.phase === 'updating') this.setPhase('ready');
      this.driftAfterChange();
    }
    if (rec.state === 'cancelled') throw ApplicationFailure.create({ type: 'UpdateCancelled', message: rec.error });
    return { update: rec, phase: this.status.phase, clusters: this.status.clusters, checks: this.status.checks };
  };

  /**
   * Every wave passed: the old revision's own objects undone and its istiods stopped, the new
   * revision's objects made the control-plane steps', the mesh's spec on the new version, the
   * east-west gateways upgraded in place, and the mesh verified.
   */
  private readonly finishUpgrade = async (
    from: UpgradeState['from'],
    to: UpgradeState['to'],
    rec: UpdateRecord,
  ): Promise<void> => {
    const up = this.status.upgrade!;
    up.stage = 'removing-old';
    const failures: string[] = [];
    const clusters = this.spec.clusters.map((c) => c.name);
    await this.eachCluster(clusters, failures, async (c) => {
      const owner = `control-plane:${c}`;
      await this.undoSome(this.exclusiveEntries(owner, c, { keep: keptAcrossRevisions, dropShared: false }));
      await this.revisionCall('stopRevision', c, from, `stop istiod ${revisionLabel(from.revision)} of ${c}`);
    });
    // The new revision's objects are the control-plane steps' from now on (a rerun renders them).
    for (const l of this.status.ledger)
      if (l.step.startsWith('upgrade:')) l.step = `control-plane:${l.step.slice('upgrade:'.length)}`;
    this.spec = { ...this.spec, istio: { ...this.spec.istio, version: to.version, revision: to.revision } };
    // The control planes are rendered again as the mesh now runs them (the revision with its tag,
    // the ingress gateway on the new version), and the east-west gateways: in place, same names.
    up.stage = 'gateways';
    this.ran.clear();
    const again = this.plan.steps.filter((s) => s.kind === 'control-plane' || s.kind === 'eastwest-gateway');
    this.switchPlan(this.spec, new Set(again.map((s) => s.id)));
    await this.walk(false);
    const notRun = again.filter((s) => this.stepStatus(s.id).state !== 'done');
    if (notRun.length) failures.push(`not upgraded in place: ${notRun.map((s) => s.id).join(', ')}`);
    await this.runVerify(`verify (after the upgrade to ${to.version})`);
    const failed = this.status.checks.filter((c) => c.status === 'failed');
    if (failures.length || failed.length) {
      rec.state = 'failed';
      rec.error =
        `every wave passed and the mesh runs ${to.version}, but: ` +
        [...failures, ...failed.map((c) => `${c.name}${c.cluster ? ` (${c.cluster})` : ''}: ${c.detail}`)].join('; ');
    } else rec.state = 'applied';
  };

  /**
   * Cuts the ledger entries of `step` in `cluster` into what only that step holds, returned to be
   * undone (removing that step's revision), and what stays: objects another step holds too, and
   * those `keep` keeps. With `dropShared`, what another step holds leaves this step's entries.
   */
  private readonly exclusiveEntries = (
    step: string,
    cluster: string,
    opts: { keep?: (o: ObjectRef) => boolean; dropShared: boolean },
  ): LedgerEntry[] => {
    const keep = opts.keep ?? (() => false);
    const others = new Set(
      this.status.ledger
        .filter((l) => l.step !== step && l.resource.type === 'objects' && l.resource.cluster === cluster)
        .flatMap((l) => [...this.objectKeys([l.resource], cluster)]),
    );
    const out: LedgerEntry[] = [];
    for (const entry of this.status.ledger.filter((l) => l.step === step)) {
      const r = entry.resource;
      if (r.type !== 'objects') {
        out.push(entry);
        continue;
      }
      const shared = (o: ObjectRef) => others.has(`${cluster}/${objectKey(o)}`);
      const own = r.objects.filter((o) => !shared(o) && !keep(o));
      const staying = r.objects.filter((o) => keep(o) || (shared(o) && !opts.dropShared));
      const part: LedgerEntry | undefined = own.length
        ? { ...entry, resource: { type: 'objects', cluster: r.cluster, objects: own } }
        : undefined;
      this.status.ledger = this.status.ledger.flatMap((l) =>
        l !== entry
          ? [l]
          : [...(staying.length ? [{ ...l, resource: { ...r, objects: staying } }] : []), ...(part ? [part] : [])],
      );
      if (part) out.push(part);
    }
    return out;
  };

  // ---------------------------------------------------------------------------------------------
  // apply: change a ready mesh to a new spec

  private readonly validateApply = (req: ApplyRequest): void => {
    if (!this.v3) {
      throw new Error(
        `mesh ${this.spec.name} was started by an earlier meshflow release, which cannot change a running mesh: ` +
          'tear it down and bring it up again to change it',
      );
    }
    this.refuseWhileUpdating();
    this.refuseUnlessReady('apply changes a ready mesh');
    if (!req || typeof req.spec !== 'object' || !Array.isArray(req.spec?.clusters))
      throw new Error('the request carries no mesh spec (want { spec, replace? })');
    let problems;
    try {
      problems = applyProblems(this.spec, upgradeSpec(req.spec), req.replace ?? []);
      diffPlans(this.spec, withRevisionOf(this.spec, upgradeSpec(req.spec)), req.replace ?? [], this.plan);
    } catch (err) {
      throw new Error(`not a mesh spec meshflow can read: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (problems.length) {
      throw ApplicationFailure.create({
        type: 'SpecChangeRefused',
        message: problems.map((p) => `${formatPath(p.path)}: ${p.message}`).join('; '),
        details: [problems],
        nonRetryable: true,
      });
    }
  };

  /**
   * Takes the mesh to `req.spec`: replaced clusters go first (their names come back), then the
   * added and changed steps run, then removed clusters are unlinked, forgotten by every istiod
   * and undone, then what a changed step no longer applies is deleted, then verify. A failure
   * undoes what the update made and brings back the previous spec (less any cluster already
   * removed); a teardown or the deadline ends it, and the teardown undoes everything.
   */
  private readonly applyChange = async (req: ApplyRequest): Promise<ApplyResult> => {
    // An upgrade's revision stays: the user's file does not name it.
    const next = withRevisionOf(this.spec, upgradeSpec(req.spec));
    const replace = req.replace ?? [];
    const prevSpec = this.spec;
    const delta = diffPlans(this.spec, next, replace, this.plan);
    const record: UpdateRecord = {
      id: currentUpdateInfo()?.id ?? `update-${(this.status.updates?.length ?? 0) + 1}`,
      requestedAt: this.now(),
      state: 'running',
      summary: delta.empty ? this.settingsSummary(this.spec, next) : this.deltaSummary(delta),
      added: delta.added.map((s) => s.id),
      rerun: delta.rerun.map((s) => s.id),
      removed: delta.removed.map((s) => s.id),
    };
    this.status.updates = [...(this.status.updates ?? []), record].slice(-20);
    if (delta.empty) {
      this.spec = next; // settings that need no step (onFailure, verify) take effect
      record.state = 'applied';
      record.endedAt = this.now();
      this.setCondition('Updating', false, 'Idle', this.lastUpdateText());
      return { update: record, phase: this.status.phase, clusters: this.status.clusters, checks: this.status.checks };
    }
    const scope = new CancellationScope();
    this.updating = { record, scope };
    this.setPhase('updating');
    /** Clusters removed so far: the previous spec without them is what a failure goes back to. */
    const gone = new Set<string>();
    /** The objects each step had applied before the update, by step: what a rollback keeps. */
    const had = new Map<string, Set<string>>();
    for (const l of this.status.ledger)
      if (l.resource.type === 'objects')
        for (const k of this.objectKeys([l.resource], l.resource.cluster))
          had.set(l.step, (had.get(l.step) ?? new Set()).add(k));
    this.ran.clear();
    const replaced = new Set(delta.replacedClusters);
    const replacing = delta.removed.filter((s) => replaced.has(s.cluster ?? '') || replaced.has(s.target ?? ''));
    const dropping = delta.removed.filter((s) => !replacing.includes(s));
    try {
      await scope.run(async () => {
        // 1. A replaced cluster goes first: the new one takes its name.
        if (delta.replacedClusters.length) {
          await this.removeSteps(replacing, prevSpec, delta.replacedClusters, record);
          for (const c of delta.replacedClusters) gone.add(c);
        }
        // 2. The new plan: its added and changed steps run, the rest is as it was.
        this.switchPlan(next, new Set([...delta.added, ...delta.rerun].map((s) => s.id)));
        this.status.clusters = next.clusters.map((c) => c.name);
        await this.walk(false);
        // 3. Removed clusters: unlinked, forgotten, undone; steps no longer in the plan undone.
        await this.removeSteps(dropping, prevSpec, delta.removedClusters, record);
        for (const c of delta.removedClusters) gone.add(c);
        // 4. What a changed step applied before and applies no more (the app moved away).
        await this.undoStale(delta.rerun.map((s) => s.id));
        // 5. Verify the mesh as the new spec has it.
        await this.runVerify('verify (after apply)');
        const failed = this.status.checks.filter((c) => c.status === 'failed');
        if (failed.length) {
          throw new Error(
            'verify failed after the change: ' +
              failed.map((c) => `${c.name}${c.cluster ? ` (${c.cluster})` : ''}: ${c.detail}`).join('; '),
          );
        }
      });
      record.state = 'applied';
      upsertSearchAttributes({ [MESH_SEARCH_ATTRIBUTES.clusterCount.name]: [this.spec.clusters.length] });
      this.status.provider = [...new Set(this.spec.clusters.map((c) => c.provider))].join(',');
    } catch (err) {
      if (isCancellation(err) || this.teardownRequested) {
        // Ended by a teardown or the deadline: the teardown that follows undoes everything.
        record.state = 'cancelled';
        record.error = this.teardownRequested ? 'teardown requested during the update' : "the mesh's TTL expired";
      } else {
        record.error = errorText(err);
        await CancellationScope.nonCancellable(() => this.rollBack(delta, prevSpec, gone, had, record));
      }
    } finally {
      record.endedAt = this.now();
      this.updating = undefined;
      if (this.status.phase === 'updating') this.setPhase('ready');
      if (this.v4drift) this.driftAfterChange(); // applied or rolled back: the mesh is as a new baseline has it
    }
    if (record.state === 'cancelled')
      throw ApplicationFailure.create({ type: 'UpdateCancelled', message: record.error });
    return { update: record, phase: this.status.phase, clusters: this.status.clusters, checks: this.status.checks };
  };

  /** "no change", or the settings that changed without steps: "settings changed: drift, onFailure". */
  private readonly settingsSummary = (from: MeshSpec, to: MeshSpec): string => {
    const keys = ['onFailure', 'drift', 'verify'] as const;
    const changed: string[] = keys.filter((k) => JSON.stringify(from[k]) !== JSON.stringify(to[k]));
    for (const k of ['intermediateValidity', 'rotateBefore'] as const)
      if (from.trust[k] !== to.trust[k]) changed.push(`trust.${k}`);
    return changed.length ? `settings changed: ${changed.join(', ')}` : 'no change';
  };

  /** "add cluster3; remove cluster1; move the app in cluster2; 4 step(s) added, 2 run again, 6 removed" */
  private readonly deltaSummary = (d: PlanDelta): string => {
    const parts = [
      ...(d.replacedClusters.length ? [`replace ${d.replacedClusters.join(', ')}`] : []),
      ...(d.addedClusters.length ? [`add ${d.addedClusters.join(', ')}`] : []),
      ...(d.removedClusters.length ? [`remove ${d.removedClusters.join(', ')}`] : []),
      ...(d.moved.length ? [`move the app in ${d.moved.join(', ')}`] : []),
    ];
    const counts = `${d.added.length} step(s) added, ${d.rerun.length} run again, ${d.removed.length} removed`;
    return d.empty ? 'no change' : [...parts, counts].join('; ');
  };

  /** Makes `next` the mesh's spec and plan; the steps in `pending` are to run, the others keep their state. */
  private readonly switchPlan = (next: MeshSpec, pending: Set<string>, runVerifyStep = false): void => {
    this.spec = next;
    this.plan = buildPlan(next, { preflight: this.plan.steps.some((s) => s.kind === 'preflight') || undefined });
    const known = new Map(this.status.steps.map((s) => [s.id, s]));
    const steps = this.plan.steps.map((step): StepStatus => {
      const old = known.get(step.id);
      if (step.kind === 'verify')
        return { ...(old ?? { id: step.id, kind: step.kind }), state: runVerifyStep ? 'pending' : 'done' };
      if (old && !pending.has(step.id)) return old;
      return { id: step.id, kind: step.kind, cluster: step.cluster, target: step.target, state: 'pending' };
    });
    // Steps no longer in the plan stay listed while the ledger holds what they made.
    const inPlan = new Set(this.plan.steps.map((s) => s.id));
    const leaving = this.status.steps.filter(
      (s) => !inPlan.has(s.id) && this.status.ledger.some((l) => l.step === s.id),
    );
    this.status.steps = [...steps, ...leaving];
  };

  /**
   * Removes steps from the mesh with what they made, and with them `clusters`: first every link
   * that reads or is read by those clusters (remote secrets in the other primaries), then proof that
   * no remaining istiod still knows them, then the rest, newest first.
   */
  private readonly removeSteps = async (steps: Step[], prev: MeshSpec, clusters: string[], record: UpdateRecord) => {
    if (!steps.length) return;
    const leaving = new Set(clusters);
    const ids = new Set(steps.map((s) => s.id));
    for (const c of prev.clusters.filter((x) => leaving.has(x.name)))
      this.status.retiredClusters = [...(this.status.retiredClusters ?? []).filter((x) => x.name !== c.name), c];
    // The remote secrets the staying primaries hold first: then no istiod reads a leaving cluster.
    const links = this.status.ledger.filter(
      (l) => ids.has(l.step) && l.step.startsWith('link:') && !leaving.has(resourceCluster(l.resource)),
    );
    // The time to disappear from every istiod runs from the unlink.
    const unlinked = Date.now();
    await this.undoSome(links);
    for (const cluster of clusters) {
      const started = unlinked;
      const out = await this.onHost(() =>
        proxyActivities<MeshActivities>({
          startToCloseTimeout: '6 minutes',
          heartbeatTimeout: '30 seconds',
          retry: RETRY,
          ...this.hostOptions(),
          summary: `prove no istiod knows ${cluster}`,
        }).awaitClusterForgotten({ mesh: this.spec.name, spec: prev, cluster }),
      ).catch((err: unknown) => ({ forgotten: false, afterMs: Date.now() - started, detail: errorText(err) }));
      const afterMs = Date.now() - started;
      (record.forgotten ??= []).push({ cluster, afterMs: out.forgotten ? afterMs : undefined, detail: out.detail });
    }
    await this.undoSome(this.status.ledger.filter((l) => ids.has(l.step)));
    const left = this.status.ledger.filter((l) => ids.has(l.step));
    if (left.length) {
      throw new Error(
        `could not remove everything of ${clusters.join(', ') || [...ids].join(', ')}: ` +
          `${left.length} resource(s) left, see leftBehind`,
      );
    }
    this.status.retiredClusters = this.status.retiredClusters?.filter((c) => !leaving.has(c.name));
    this.status.steps = this.status.steps.filter((s) => !ids.has(s.id) || this.plan.steps.some((p) => p.id === s.id));
  };

  /** What the steps run again applied before and did not apply this time: deleted. */
  private readonly undoStale = async (steps: string[]): Promise<void> => {
    const stale: LedgerEntry[] = [];
    for (const step of steps) {
      const now = this.ran.get(step);
      if (!now) continue;
      for (const entry of this.status.ledger.filter((l) => l.step === step && l.resource.type === 'objects')) {
        const r = entry.resource as Extract<Resource, { type: 'objects' }>;
        const keep = this.objectKeys(now, r.cluster);
        const gone = r.objects.filter((o) => !keep.has(`${r.cluster}/${objectKey(o)}`));
        if (gone.length) stale.push(this.splitObjects(entry, gone));
      }
    }
    await this.undoSome(stale);
  };

  /** Takes `gone` out of `entry` into an entry of its own (which undo then removes from the ledger). */
  private readonly splitObjects = (entry: LedgerEntry, gone: ObjectRef[]): LedgerEntry => {
    const r = entry.resource as Extract<Resource, { type: 'objects' }>;
    const drop = new Set(gone.map(objectKey));
    const rest = r.objects.filter((o) => !drop.has(objectKey(o)));
    const part: LedgerEntry = { ...entry, resource: { type: 'objects', cluster: r.cluster, objects: gone } };
    this.status.ledger = this.status.ledger.flatMap((l) =>
      l !== entry ? [l] : [...(rest.length ? [{ ...l, resource: { ...r, objects: rest } }] : []), part],
    );
    return part;
  };

  /**
   * After a failed update: undoes what it added, brings back the steps it changed as `prev` had
   * them, and verifies. Clusters already removed stay removed (the previous spec without them).
   */
  private readonly rollBack = async (
    d: PlanDelta,
    prev: MeshSpec,
    gone: Set<string>,
    had: Map<string, Set<string>>,
    record: UpdateRecord,
  ): Promise<void> => {
    const added = new Set(d.added.map((s) => s.id));
    const before = new Set(d.rerun.map((s) => s.id));
    // Objects a changed step applied (finished or not) that it had not applied before the update.
    const fresh: LedgerEntry[] = [];
    for (const step of before) {
      for (const entry of this.status.ledger.filter((l) => l.step === step && l.resource.type === 'objects')) {
        const r = entry.resource as Extract<Resource, { type: 'objects' }>;
        const newObjects = r.objects.filter((o) => !had.get(step)?.has(`${r.cluster}/${objectKey(o)}`));
        if (newObjects.length) fresh.push(this.splitObjects(entry, newObjects));
      }
    }
    await this.undoSome([...this.status.ledger.filter((l) => added.has(l.step)), ...fresh]);
    const target: MeshSpec = { ...prev, clusters: prev.clusters.filter((c) => !gone.has(c.name)) };
    // Every changed step runs again as the previous spec has it: one that failed half-way too.
    const redo = new Set([...diffPlans(prev, target).rerun.map((s) => s.id), ...before]);
    const leftover = this.status.ledger.filter((l) => added.has(l.step));
    try {
      if (leftover.length)
        throw new Error(`${leftover.length} resource(s) it added could not be removed: see leftBehind`);
      this.switchPlan(target, redo, true);
      this.status.clusters = target.clusters.map((c) => c.name);
      this.status.checks = [];
      await this.walk(true);
      record.state = 'rolled-back';
      record.error =
        `${record.error}; undone: the mesh is as the previous spec had it` +
        (gone.size ? `, without ${[...gone].join(', ')} (already removed)` : '');
    } catch (err) {
      record.state = 'failed';
      record.error = `${record.error}; rolling back failed too: ${errorText(err)}`;
    }
    upsertSearchAttributes({ [MESH_SEARCH_ATTRIBUTES.clusterCount.name]: [this.spec.clusters.length] });
  };

  /** Runs the checks of the mesh as it is now; the status carries them. */
  private readonly runVerify = async (summaryText: string): Promise<void> => {
    const step = this.plan.steps.find((s) => s.kind === 'verify')!;
    const s = this.stepStatus(step.id);
    Object.assign(s, { state: 'running', startedAt: this.now(), endedAt: undefined });
    try {
      const out = await this.onHost(() => this.stepActivity(step, summaryText)(this.request(step)));
      this.status.checks = out.checks ?? [];
      this.status.verifiedAt = this.now();
      s.state = 'done';
    } catch (err) {
      s.state = 'failed';
      s.lastError = errorText(err);
      throw err;
    } finally {
      s.endedAt = this.now();
    }
  };

  /**
   * Undoes `entries` (newest first): one lane per cluster in parallel, the objects in a cluster
   * meshflow made and deletes whole skipped (they go with it), host files and trust entries last.
   */
  private readonly undoInLanes = async (entries: LedgerEntry[]): Promise<void> => {
    // A cluster meshflow made goes whole, with everything in it.
    const createdBy = (cluster: string) => {
      const c = this.undoSpecFor({ type: 'cluster', cluster, provider: '' }).clusters.find((x) => x.name === cluster);
      return c === undefined || providerOf(c.provider).createsCluster;
    };
    const goneWhole = new Set(
      entries.flatMap((e) =>
        e.resource.type === 'cluster' && createdBy(e.resource.cluster) ? [e.resource.cluster] : [],
      ),
    );
    const lanes = new Map<string, LedgerEntry[]>();
    for (const e of entries) {
      if (e.resource.type === 'objects' && goneWhole.has(e.resource.cluster)) {
        this.status.ledger = this.status.ledger.filter((l) => l !== e); // deleted with its cluster
        continue;
      }
      const lane = resourceCluster(e.resource);
      lanes.set(lane, [...(lanes.get(lane) ?? []), e]);
    }
    const runLane = async (lane: LedgerEntry[]) => {
      for (const e of lane) await this.undoEntry(e);
    };
    await Promise.all([...lanes].filter(([lane]) => lane !== '').map(([, lane]) => runLane(lane)));
    await runLane(lanes.get('') ?? []);
  };

  /** Undoes some ledger entries: newest first, one lane per cluster, objects of a deleted cluster with it. */
  private readonly undoSome = async (entries: LedgerEntry[]): Promise<void> => {
    if (!entries.length) return;
    const newestFirst = [...entries].sort((a, b) => this.status.ledger.indexOf(b) - this.status.ledger.indexOf(a));
    for (const e of newestFirst) (this.status.steps.find((s) => s.id === e.step) ?? { state: '' }).state = 'undoing';
    await this.undoInLanes(newestFirst);
    for (const e of newestFirst) {
      const s = this.status.steps.find((x) => x.id === e.step);
      if (s) s.state = this.status.ledger.includes(e) ? 'undo-failed' : 'undone';
    }
  };

  /** "cluster/apiVersion/kind/namespace/name" of each object in `resources` that is in `cluster`. */
  private readonly objectKeys = (resources: Resource[], cluster: string): Set<string> => {
    return new Set(
      resources.flatMap((r) =>
        r.type === 'objects' && r.cluster === cluster ? r.objects.map((o) => `${cluster}/${objectKey(o)}`) : [],
      ),
    );
  };

  /** Undoes one ledger entry; a failure is recorded, never dropped. */
  private readonly undoEntry = async (entry: LedgerEntry): Promise<void> => {
    const r = entry.resource;
    const what =
      r.type === 'cluster'
        ? `cluster ${r.cluster}`
        : r.type === 'file'
          ? r.path.split('/').slice(-3).join('/')
          : r.type === 'firewall'
            ? `firewall rule ${r.name}`
            : r.type === 'trust'
              ? `trust store entries of ${r.mesh}`
              : `${r.objects.length} object(s) in ${r.cluster}`;
    const summaryText = `undo ${entry.step}: ${what}`;
    const req = { mesh: this.spec.name, spec: this.undoSpecFor(r), resource: r };
    try {
      let out: UndoOutcome | void = undefined;
      try {
        if (!this.abandonHost) out = await this.onHost(() => this.undoActivity(summaryText)(req));
      } catch (err) {
        if (!(err instanceof HostAbandoned)) throw err;
      }
      if (this.abandonHost) {
        // Only the host reaches its local clusters and its state directory; the rest, any worker.
        if (this.needsHost(r)) {
          this.status.leftBehind.push({
            resource: r,
            error:
              `on host ${this.status.host}, abandoned by down --abandon-host: ` +
              'remove it there (meshflow gc on that host)',
          });
          return;
        }
        out = await this.undoActivity(`${summaryText} (any worker)`, false)(req);
      }
      if (out?.untouched.length) (this.status.untouched ??= []).push(...out.untouched);
      this.status.ledger = this.status.ledger.filter((l) => l !== entry);
    } catch (err) {
      this.status.leftBehind.push({ resource: r, error: errorText(err) });
    }
  };

  /** A resource only the mesh's host can remove: a file in its state directory, a local cluster or what is in one. */
  private readonly needsHost = (r: Resource): boolean => {
    if (r.type === 'file') return true;
    if (r.type === 'firewall' || r.type === 'trust') return false; // a cloud's, a management cluster's
    const c = this.undoSpecFor(r).clusters.find((x) => x.name === r.cluster);
    return c !== undefined && providerOf(c.provider).runsOnHost;
  };

  /** The spec an undo of `r` needs: the mesh's, or with the cluster an update removed, which `r` is in. */
  private readonly undoSpecFor = (r: Resource): MeshSpec => {
    const cluster = r.type === 'cluster' || r.type === 'objects' ? r.cluster : undefined;
    if (!cluster || this.spec.clusters.some((c) => c.name === cluster)) return this.spec;
    const retired = this.status.retiredClusters?.find((c) => c.name === cluster);
    return retired ? { ...this.spec, clusters: [...this.spec.clusters, retired] } : this.spec;
  };

  /**
   * Undoes the ledger newest first. Release 2 runs one lane per cluster in parallel (objects in
   * different clusters do not depend on each other), skips the objects inside a local cluster
   * that is itself deleted, and removes host files (the CAs) last.
   */
  private readonly undoAll = async (): Promise<void> => {
    const entries = [...this.status.ledger].reverse();
    // An upgrade's entries (`upgrade:<cluster>`) belong to no step of the plan.
    const mark = (id: string, state: StepState) => {
      const s = this.status.steps.find((x) => x.id === id);
      if (s) s.state = state;
    };
    for (const e of entries) mark(e.step, 'undoing');
    if (!this.v2) {
      for (const e of entries) await this.undoEntry(e);
    } else {
      await this.undoInLanes(entries);
    }
    const failedSteps = new Set(
      entries.filter((e) => this.status.leftBehind.some((l) => l.resource === e.resource)).map((e) => e.step),
    );
    for (const e of entries) mark(e.step, failedSteps.has(e.step) ? 'undo-failed' : 'undone');
  };

  // ---------------------------------------------------------------------------------------------
  // drift: compare a ready mesh with its baseline, and repair it by running the owning steps again

  /** The baseline is stale after a change: the live loop takes a new one. */
  private readonly driftAfterChange = (): void => {
    this.driftStale++;
    this.driftVersion++;
  };

  /** How long until the live loop has drift work (a baseline, a check); Infinity when it has none. */
  private readonly driftDueIn = (): number => {
    if (this.status.phase !== 'ready' || this.teardownRequested || this.drifting || this.baselining) return Infinity;
    if (!this.driftBase || this.driftBaselined !== this.driftStale) return this.baselineRetryAt - Date.now();
    const every = driftEveryMs(this.spec.drift.every);
    if (every === undefined) return Infinity;
    const last = Math.max(Date.parse(this.driftBase.at), Date.parse(this.status.drift?.checkedAt ?? this.driftBase.at));
    return last + every - Date.now();
  };

  /** The live loop's drift work: a baseline when there is none (or a stale one), else a check. */
  private readonly driftTick = async (): Promise<void> => {
    if (!this.driftBase || this.driftBaselined !== this.driftStale) await this.takeBaseline();
    else await this.checkDriftNow('timer');
  };

  private readonly driftActivity = (summaryText: string) => {
    return proxyActivities<MeshActivities>({
      startToCloseTimeout: '10 minutes',
      ...BEAT,
      retry: RETRY,
      ...this.hostOptions(),
      summary: summaryText,
    });
  };

  /** Takes the baseline of what the mesh's steps applied; a failure is tried again a minute later. */
  private readonly takeBaseline = (): Promise<void> => {
    this.baselining ??= (async () => {
      const version = this.driftStale;
      try {
        const req = { mesh: this.spec.name, spec: this.spec, ledger: this.status.ledger };
        const out = await this.onHost(() => this.driftActivity('drift: take the baseline').baselineDrift(req));
        this.driftBase = { baseline: out.baseline, at: this.now() };
        this.driftBaselined = version;
      } catch (err) {
        if (isCancellation(err)) throw err;
        this.baselineRetryAt = Date.now() + 60_000;
        this.status.drift = {
          ...(this.status.drift ?? this.emptyDrift('timer')),
          error: `baseline: ${errorText(err)}`,
        };
      } finally {
        this.baselining = undefined;
        this.driftVersion++;
      }
    })();
    return this.baselining;
  };

  private readonly emptyDrift = (trigger: DriftStatus['trigger']): DriftStatus => {
    return { checkedAt: this.now(), trigger, objects: 0, items: [], failedChecks: [], repaired: [], state: 'clean' };
  };

  private readonly refuseWhileDrifting = (what: string): void => {
    if (this.drifting)
      throw new Error(
        `a drift check of mesh ${this.spec.name} has been running since ${this.drifting.since}: ${what} waits for it ` +
          `(meshflow status ${this.spec.name})`,
      );
  };

  private readonly validateDrift = (): void => {
    if (!this.v4drift)
      throw new Error(
        `mesh ${this.spec.name} was started by an earlier meshflow release, which has no drift detection: ` +
          'tear it down and bring it up again to have it',
      );
    if (this.updating) {
      const r = this.updating.record;
      throw new Error(
        `update ${r.id} (${r.summary}) has been running since ${r.requestedAt}: drift is checked after it, ` +
          `one change at a time (meshflow status ${this.spec.name})`,
      );
    }
    this.refuseWhileDrifting('another check');
    if (this.renewal) throw new Error(`mesh ${this.spec.name} is renewing reader tokens: check for drift in a moment`);
    this.refuseUnlessReady('drift is checked on a ready mesh');
  };

  /**
   * One drift check: the ledger's objects against the baseline, and every check. With
   * `drift.repair`, the steps that own what is missing or changed, and those that repair a failed
   * check, run again (as a walk runs them), then verify, then a new baseline. Objects that are not
   * the mesh's and clusters that do not answer are reported, never acted on.
   */
  private readonly checkDriftNow = async (trigger: DriftStatus['trigger']): Promise<DriftStatus> => {
    const scope = new CancellationScope();
    this.drifting = { since: this.now(), scope };
    const out = this.emptyDrift(trigger);
    try {
      await scope.run(async () => {
        if (this.baselining) await this.baselining;
        if (!this.driftBase || this.driftBaselined !== this.driftStale) await this.takeBaseline();
        if (!this.driftBase) throw new Error(this.status.drift?.error ?? 'no baseline could be taken');
        const req = {
          mesh: this.spec.name,
          spec: this.spec,
          ledger: this.status.ledger,
          baseline: this.driftBase.baseline,
        };
        const [report] = await Promise.all([
          this.onHost(() =>
            this.driftActivity(`drift: check ${trigger === 'timer' ? 'on schedule' : 'on request'}`).checkDrift(req),
          ),
          this.runVerify(`verify (drift check)`),
        ]);
        out.checkedAt = this.now();
        out.objects = report.objects;
        out.items = report.items;
        out.failedChecks = this.status.checks.filter((c) => c.status === 'failed');
        if (!out.items.length && !out.failedChecks.length) return;
        if (!this.spec.drift.repair) {
          out.state = 'drifted';
          return;
        }
        out.state = 'unrepaired';
        const steps = this.repairSteps(report, out.failedChecks);
        if (steps.length) {
          for (const id of steps) this.stepStatus(id).state = 'pending';
          try {
            await this.walk(false);
          } finally {
            out.repaired = steps.filter((id) => this.stepStatus(id).state === 'done');
          }
          await this.runVerify('verify (after drift repair)');
          await this.takeBaseline();
        }
        const stays =
          out.items.some((i) => !out.repaired.includes(i.step) || (i.kind !== 'missing' && i.kind !== 'changed')) ||
          this.status.checks.some((c) => c.status === 'failed');
        if (!stays) out.state = 'repaired';
      });
    } catch (err) {
      // The check could not run, or the repair failed (its step says why): nothing is known to be repaired.
      out.state = 'unrepaired';
      out.error = isCancellation(err) ? 'ended by a teardown' : errorText(err);
    } finally {
      this.drifting = undefined;
      this.driftVersion++;
    }
    this.recordDrift(out);
    return out;
  };

  /** The plan steps that repair `report` and `failed`, in plan order (dependencies first). */
  private readonly repairSteps = (report: DriftReport, failed: CheckResult[]): string[] => {
    const wanted = new Set([...stepsForDrift(report), ...stepsForChecks(this.spec, failed)]);
    return this.plan.steps
      .filter((s) => wanted.has(s.id) && s.kind !== 'verify' && s.kind !== 'preflight')
      .map((s) => s.id);
  };

  /** The report goes into the status, the Drifted condition and the memo `list` reads. */
  private readonly recordDrift = (d: DriftStatus): void => {
    this.status.drift = d;
    const found = d.items.length + d.failedChecks.length;
    const what = `${d.items.length} object(s) drifted, ${d.failedChecks.length} check(s) failed at ${d.checkedAt}`;
    // Clusters that did not answer say nothing either way: Unknown, unless something else was found.
    const unknown =
      !d.error && !d.failedChecks.length && d.items.length > 0 && d.items.every((i) => i.kind === 'unreachable');
    const [value, reason, message]: [MeshCondition['status'], string, string] =
      d.state === 'clean'
        ? ['False', 'NoDrift', `checked ${d.checkedAt}: nothing drifted, every check passed`]
        : d.state === 'repaired'
          ? ['False', 'Repaired', `${what}; repaired by running ${d.repaired.join(', ')} again`]
          : unknown
            ? ['Unknown', 'ClustersUnreachable', `${what}: ${d.items.map((i) => i.detail).join('; ')}`]
            : [
                'True',
                d.state === 'drifted' ? 'RepairOff' : d.error ? 'RepairFailed' : 'NotRepaired',
                `${what}${d.state === 'drifted' ? ' (drift.repair is false: reported only)' : ''}` +
                  `${d.error ? `: ${d.error}` : ''}; see the status's drift`,
              ];
    const known = this.status.conditions?.find((c) => c.type === 'Drifted');
    const next: MeshCondition = {
      type: 'Drifted',
      status: value,
      reason,
      message,
      lastTransitionTime: known?.status === value ? known.lastTransitionTime : this.now(),
    };
    this.status.conditions = known
      ? this.status.conditions!.map((c) => (c === known ? next : c))
      : [...(this.status.conditions ?? []), next];
    if (this.status.phase === 'ready') this.phaseConditions('ready'); // Ready follows the checks that just ran
    upsertMemo({ drift: d.state === 'clean' ? null : { state: d.state, found, checkedAt: d.checkedAt } });
  };
}
