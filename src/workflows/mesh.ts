// provisionMesh: walks the mesh's plan (independent steps in parallel), records everything each
// step creates in a ledger the moment it is reported (by a finished step, or in the trace of a
// failed, cancelled or timed-out one), and on failure, cancellation, `down` or TTL expiry undoes
// the ledger newest first in a non-cancellable scope. `down` and expiry during provisioning
// cancel the running steps first. A ready mesh, or one kept after a failure (`onFailure: keep`),
// stays open until its deadline or a teardown; `extend` moves the deadline, `verify` re-runs the
// checks, and reader tokens are renewed before they expire. Long waits continue-as-new with the
// state they carry, so history stays bounded.
//
// Versioning (see README, "Changing the workflow"): a change that alters the commands this code
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
import { STEP_ACTIVITIES } from '../steps/activity-names';
import type { HostActivities, HostClaim } from '../activities/host';
import type { MeshSpec } from '../spec/schema';
import { buildPlan, needsPreflight, type Step, type StepKind } from '../plan/plan';
import { MAX_TTL_MS, formatDurationMs, parseDuration } from '../spec/duration';
import { upgradeSpec } from '../spec/upgrade';
import { type LedgerEntry, type Resource, type StepTrace, type UndoOutcome, resourceCluster } from '../steps/contract';
import { NON_RETRYABLE_TYPES } from '../steps/errors';
import { MESH_SEARCH_ATTRIBUTES } from '../temporal/search-attributes';
import { extendUpdate, statusQuery, teardownSignal, verifyUpdate } from './definitions';
import type { MeshPhase, MeshStatus, ProvisionMeshInput, StepOutcome, StepStatus, TeardownOptions } from './types';

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

/** A renewal that failed is tried again this much later (the token it replaces is still valid for a while). */
const RENEWAL_RETRY_MS = 5 * 60_000;
/** How long a step waits for the mesh's host to pick it up before the mesh says the host is unavailable. */
const HOST_WAIT = '5 minutes';
/** A token that outlives the mesh by this much needs no renewal. */
const TOKEN_MARGIN_MS = 10 * 60_000;

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
    return (
      spec.clusters.some((c) => c.provider !== 'gke') ||
      spec.trust.rootCa !== undefined ||
      spec.app.manifests.length > 0
    );
  }
  return (
    spec.clusters.some(
      (c) => c.provider === 'local' || (c.provider === 'existing' && c.existing?.stored === undefined),
    ) ||
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

export async function provisionMesh(input: ProvisionMeshInput): Promise<MeshStatus> {
  const v2 = patched(PATCH_V2);
  const v3 = v2 && patched(PATCH_V3);
  const v4 = v3 && patched(PATCH_V4);
  const spec = upgradeSpec(input.spec);
  // Meshes started before preflights existed keep the plan they started with.
  const plan = buildPlan(spec, { preflight: needsPreflight(spec) && patched(PATCH_PREFLIGHT) });
  const now = () => new Date(Date.now()).toISOString();
  const status: MeshStatus = input.carried ?? {
    mesh: spec.name,
    phase: 'provisioning',
    provider: [...new Set(spec.clusters.map((c) => c.provider))].join(','),
    clusters: spec.clusters.map((c) => c.name),
    startedAt: now(),
    // The deadline runs from the start: a mesh never outlives its TTL, not even one still provisioning.
    expiresAt: v2 ? new Date(Date.now() + parseDuration(spec.ttl)!).toISOString() : undefined,
    steps: plan.steps.map((s): StepStatus => ({
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
  const stepStatus = (id: string) => status.steps.find((s) => s.id === id)!;
  const request = (step: Step) => ({
    mesh: spec.name,
    spec,
    step: { id: step.id, kind: step.kind, cluster: step.cluster, target: step.target },
  });
  const record = (step: string, resources: Resource[]) => {
    for (const resource of resources) {
      // A step run again (a token renewal, a retry) reports what it already created: one entry is enough.
      const known = status.ledger.some(
        (l) => l.step === step && JSON.stringify(l.resource) === JSON.stringify(resource),
      );
      if (!known) status.ledger.push({ step, resource, createdAt: now() });
    }
  };
  // The copies `up` made are the mesh's trust store entries, as its CAs are (the root-ca step's):
  // recorded now, so they are undone with the mesh even when it fails before that step.
  if (v4 && !input.carried && copiedFiles(spec)) {
    record(plan.steps.find((s) => s.kind === 'root-ca')!.id, [{ type: 'trust', mesh: spec.name }]);
  }
  let teardownRequested = false;
  /** Why provisioning was stopped from outside (teardown, expiry), once it was. */
  let stopReason: string | undefined;
  let deadlineVersion = 0;
  const provisioning = new CancellationScope();

  /** Set by `down --abandon-host`: nothing waits on the host any more. */
  let abandonHost = false;
  /** Scopes of the activities waiting on (or running on) the host: an abandon cancels them. */
  const hostScopes = new Set<CancellationScope>();
  /** A due token renewal, which a teardown cancels (the host it waits on may be gone). */
  let renewal: CancellationScope | undefined;
  const hostOptions = (): ActivityOptions =>
    status.hostQueue
      ? { taskQueue: status.hostQueue, ...(v3 ? { scheduleToStartTimeout: input.hostWait ?? HOST_WAIT } : {}) }
      : {};
  const stepActivity = (step: Step, summaryText = summary(step)) =>
    // On cancel, wait for the activity to finish or acknowledge: one that completes anyway has
    // created something, and its result (or trace) must reach the ledger to be undone.
    proxyActivities<MeshActivities>({
      ...OPTIONS[step.kind],
      ...(v2 ? {} : { heartbeatTimeout: V1_HEARTBEAT[step.kind] }),
      ...hostOptions(),
      summary: summaryText,
      cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    })[STEP_ACTIVITIES[step.kind]];
  const undoActivity = (summaryText: string, onHost = true) =>
    proxyActivities<MeshActivities>({ ...UNDO_OPTIONS, ...(onHost ? hostOptions() : {}), summary: summaryText })
      .undoResource;

  /**
   * Runs an activity on the mesh's host. While no worker of the host picks it up, the status says
   * HostUnavailable and the activity is asked again; once one does, the condition goes. An abandon
   * (`down --abandon-host`) ends the wait with HostAbandoned.
   */
  async function onHost<T>(call: () => Promise<T>): Promise<T> {
    if (!v3 || !status.hostQueue) return call();
    for (;;) {
      if (abandonHost) throw new HostAbandoned();
      const scope = new CancellationScope();
      hostScopes.add(scope);
      try {
        const out = await scope.run(call);
        setHostCondition(false);
        return out;
      } catch (err) {
        if (abandonHost && (isCancellation(err) || hostTimedOut(err))) throw new HostAbandoned();
        if (!hostTimedOut(err)) throw err;
        setHostCondition(true);
      } finally {
        hostScopes.delete(scope);
      }
    }
  }

  function setHostCondition(unavailable: boolean): void {
    const known = status.conditions?.some((c) => c.type === 'HostUnavailable') ?? false;
    if (unavailable === known) return;
    if (unavailable) {
      const host = status.host ?? status.hostQueue!;
      const message =
        `no worker of host ${host} has picked up a step of mesh ${spec.name} for ${input.hostWait ?? HOST_WAIT}; ` +
        `its steps wait for it. Start a worker with that host's state directory (or MESHFLOW_HOST_ID=${host}), ` +
        `or run \`meshflow down ${spec.name} --abandon-host\` to tear down what any worker can reach`;
      status.conditions = [...(status.conditions ?? []), { type: 'HostUnavailable', host, since: now(), message }];
    } else {
      status.conditions = status.conditions!.filter((c) => c.type !== 'HostUnavailable');
    }
    const condition = status.conditions.find((c) => c.type === 'HostUnavailable');
    // The memo is what `list` and the Web UI's run list read without asking the workflow.
    upsertMemo({ hostUnavailable: condition ? { host: condition.host, since: condition.since } : null });
    setCurrentDetails(
      `phase: ${status.phase}` + (condition ? `; host ${condition.host} unavailable since ${condition.since}` : ''),
    );
  }

  const setPhase = (phase: MeshPhase) => {
    status.phase = phase;
    upsertSearchAttributes({ [MESH_SEARCH_ATTRIBUTES.phase.name]: [phase] });
    setCurrentDetails(`phase: ${phase}`); // the Web UI shows it beside the run
  };
  /** The TTL timer's summary in the Web UI. */
  const ttlSummary = () => `TTL: tear down at ${status.expiresAt}`;
  upsertSearchAttributes({
    [MESH_SEARCH_ATTRIBUTES.name.name]: [spec.name],
    [MESH_SEARCH_ATTRIBUTES.provider.name]: [status.provider],
    [MESH_SEARCH_ATTRIBUTES.clusterCount.name]: [spec.clusters.length],
    [MESH_SEARCH_ATTRIBUTES.phase.name]: [status.phase],
  });

  const stopProvisioning = (reason: string) => {
    if (stopReason !== undefined || status.phase !== 'provisioning') return;
    stopReason = reason;
    provisioning.cancel();
  };
  setHandler(statusQuery, () => status);
  setHandler(teardownSignal, (options?: TeardownOptions) => {
    teardownRequested = true;
    if (v3 && options?.abandonHost && !abandonHost) {
      abandonHost = true;
      for (const scope of hostScopes) scope.cancel();
    }
    if (v3) renewal?.cancel();
    if (v2) stopProvisioning(`teardown requested while provisioning${abandonHost ? ' (abandoning the host)' : ''}`);
  });
  setHandler(
    extendUpdate,
    (by: string) => {
      // From the deadline the mesh has (its TTL from the start, or an earlier extend), never from now.
      const base = Math.max(Date.parse(status.expiresAt ?? now()), Date.now());
      status.expiresAt = new Date(base + parseDuration(by)!).toISOString();
      deadlineVersion++;
      return status.expiresAt;
    },
    {
      validator: (by: string) => {
        const ms = parseDuration(by);
        if (ms === undefined || ms <= 0) throw new Error(`"${by}" is not a positive duration such as 30m, 2h or 1d`);
        if (!['ready', 'provisioning', 'kept'].includes(status.phase))
          throw new Error(`mesh ${spec.name} is ${status.phase}: nothing to extend`);
        const base = Math.max(Date.parse(status.expiresAt ?? now()), Date.now());
        if (base + ms - Date.now() > MAX_TTL_MS)
          throw new Error(`a mesh may live at most ${formatDurationMs(MAX_TTL_MS)} from now`);
      },
    },
  );
  setHandler(
    verifyUpdate,
    async () => {
      const step = plan.steps.find((s) => s.kind === 'verify')!;
      const out = await onHost(() => stepActivity(step, 'verify (requested)')(request(step)));
      status.checks = out.checks ?? [];
      status.verifiedAt = now();
      return status.checks;
    },
    {
      validator: () => {
        if (status.phase !== 'ready')
          throw new Error(`mesh ${spec.name} is ${status.phase}: checks run on a ready mesh`);
      },
    },
  );

  // Steps that need this host's state (CA keys, local clusters, kubeconfig files) run on the
  // task queue of the worker that claimed the mesh; the claim is carried across continue-as-new.
  // Release 3: a mesh that needs no host's disk (cloud clusters only, its CAs in a store every
  // worker reads) is claimed by none: its steps run on the shared queue, on any worker.
  if (v2 && !status.hostQueue && !(v3 && input.carried)) {
    const host = await proxyActivities<HostActivities>({
      startToCloseTimeout: '1 minute',
      summary: 'claim a worker host',
    }).claimHost();
    if (!v3 || needsOneHost(spec, host, v4)) {
      status.hostQueue = host.taskQueue;
      status.host = host.host;
    }
  }
  if (!input.carried) {
    const outcome = await provision();
    // Release 1 closed a kept mesh's workflow; a stop that was asked for has been compensated.
    if ((!v2 && outcome === 'kept') || outcome === 'stopped') return status;
  }
  await live();
  setPhase('tearing-down');
  await CancellationScope.nonCancellable(() => undoAll());
  setPhase(status.leftBehind.length ? 'failed' : 'deleted');
  if (v2) await condition(allHandlersFinished);
  return status;

  /**
   * Runs the plan: 'ready', or 'kept' when a failure left the mesh as it was (onFailure: keep).
   * A teardown or an expiry is compensated ('stopped'); any other failure too, and then thrown.
   */
  async function provision(): Promise<'ready' | 'kept' | 'stopped'> {
    if (v2) {
      // A workflow cancel reaches this wait too: that ends it, and the walk's own handling follows.
      watchDeadlineWhileProvisioning().catch((err: unknown) => {
        if (!isCancellation(err)) throw err;
      });
    }
    try {
      await provisioning.run(() => walk());
    } catch (err) {
      status.error = stopReason ?? (isCancellation(err) ? 'cancelled' : errorText(err));
      const stopped = stopReason !== undefined || isCancellation(err);
      if (spec.onFailure === 'keep' && !stopped) {
        for (const s of status.steps) if (s.state === 'done') s.state = 'kept';
        setPhase('kept');
        return 'kept';
      }
      setPhase('compensating');
      await CancellationScope.nonCancellable(() => undoAll());
      setPhase(status.leftBehind.length ? 'failed' : 'deleted');
      if (stopReason !== undefined) {
        // Asked for (down, expiry): the workflow completes, its result says what was removed.
        await condition(allHandlersFinished);
        return 'stopped';
      }
      if (isCancellation(err)) throw err;
      throw ApplicationFailure.create({
        type: 'MeshProvisioningFailed',
        message:
          `mesh ${spec.name} failed: ${status.error}. ` +
          (status.leftBehind.length
            ? `Could not remove ${status.leftBehind.length} resource(s): see status.leftBehind.`
            : 'Everything it created was removed.'),
        nonRetryable: true,
      });
    }
    status.readyAt = now();
    status.expiresAt ??= new Date(Date.now() + parseDuration(spec.ttl)!).toISOString();
    setPhase('ready');
    return 'ready';
  }

  /** Cancels provisioning when the deadline passes first (extend moves it). */
  async function watchDeadlineWhileProvisioning(): Promise<void> {
    while (status.phase === 'provisioning' && stopReason === undefined) {
      const left = Date.parse(status.expiresAt!) - Date.now();
      if (left <= 0) return stopProvisioning(`the mesh's TTL (${spec.ttl}) expired while it was provisioning`);
      const seen = deadlineVersion;
      await condition(
        () => status.phase !== 'provisioning' || stopReason !== undefined || deadlineVersion !== seen,
        left,
        { summary: ttlSummary() },
      );
    }
  }

  /** Ready or kept: waits for the deadline (which `extend` may move) or a teardown, renewing reader tokens of a ready mesh. */
  async function live(): Promise<void> {
    try {
      for (;;) {
        const left = Date.parse(status.expiresAt!) - Date.now();
        if (left <= 0 || teardownRequested) break;
        const renewIn = status.phase === 'ready' ? nextRenewal() - Date.now() : Infinity;
        if (renewIn <= 0) {
          if (v3) {
            // In a scope a teardown cancels: a renewal waiting on a host that is gone must not hide it.
            renewal = new CancellationScope();
            await renewal.run(() => renewTokens());
            renewal = undefined;
          } else await renewTokens();
          continue;
        }
        const seen = deadlineVersion;
        await condition(
          () => teardownRequested || deadlineVersion !== seen || workflowInfo().continueAsNewSuggested,
          Math.min(left, renewIn),
          { summary: left <= renewIn ? ttlSummary() : `renew reader tokens, then ${ttlSummary()}` },
        );
        if (workflowInfo().continueAsNewSuggested && !teardownRequested) {
          await condition(allHandlersFinished); // a running verify or extend finishes first
          // A teardown that arrived meanwhile is not carried into a new run: it is served here.
          if (v2 && teardownRequested) break;
          await continueAsNew<typeof provisionMesh>({ spec, carried: status, hostWait: input.hostWait });
        }
      }
    } catch (err) {
      if (!isCancellation(err)) throw err;
    }
  }

  /** When the first reader token that must outlive the mesh's deadline is due for renewal (Infinity: none is). */
  function nextRenewal(): number {
    const deadline = Date.parse(status.expiresAt!) + TOKEN_MARGIN_MS;
    const due = status.steps
      .filter((s) => s.kind === 'link' && s.outputs?.tokenRenewAt && Date.parse(s.outputs.tokenExpiresAt) < deadline)
      .map((s) => Date.parse(s.outputs!.tokenRenewAt));
    return Math.min(Infinity, ...due);
  }

  /** Links again the pairs whose tokens are due: a fresh token replaces the old one in the remote secret. */
  async function renewTokens(): Promise<void> {
    const due = plan.steps.filter(
      (step) => step.kind === 'link' && Date.parse(stepStatus(step.id).outputs?.tokenRenewAt ?? '') <= Date.now(),
    );
    await Promise.all(
      due.map(async (step) => {
        const s = stepStatus(step.id);
        try {
          const renew = stepActivity(step, `renew token ${step.cluster} -> ${step.target}`);
          const out = await onHost(() => renew(request(step)));
          record(step.id, out.resources);
          s.outputs = { ...out.outputs, renewedAt: now() };
          s.lastError = undefined;
        } catch (err) {
          record(step.id, tracedResources(err));
          s.lastError = `token renewal failed, retrying in ${formatDurationMs(RENEWAL_RETRY_MS)}: ${errorText(err)}`;
          s.outputs = { ...s.outputs, tokenRenewAt: new Date(Date.now() + RENEWAL_RETRY_MS).toISOString() };
        }
      }),
    );
  }

  async function walk(): Promise<void> {
    const done = new Set<string>();
    const running = new Map<string, Promise<void>>();
    let failure: unknown;
    /** The steps of this walk: the first failure cancels them (a GKE create may otherwise run on for 45 minutes). */
    const steps = new CancellationScope();
    /** Why the running steps were cancelled, once a step failed. */
    let failedStep: string | undefined;
    const start = (step: Step) => {
      const s = stepStatus(step.id);
      s.state = 'running';
      s.startedAt = now();
      const act = stepActivity(step);
      const p = (async () => {
        try {
          const out: StepOutcome = await (v3 ? steps.run(() => onHost(() => act(request(step)))) : act(request(step)));
          // Record what was created before anything else can fail: it must be undone whatever happens next.
          record(step.id, out.resources);
          if (out.checks) status.checks.push(...out.checks);
          s.outputs = out.outputs;
          s.attempts = out.attempt;
          s.state = 'done';
          done.add(step.id);
        } catch (err) {
          // A step that fails, is cancelled or times out says in its trace what it may have created.
          record(step.id, tracedResources(err));
          s.state = 'failed';
          const cancelledBy = stopReason ?? (failedStep && `step ${failedStep} failed`);
          s.lastError = isCancellation(err) && cancelledBy ? `cancelled: ${cancelledBy}` : errorText(err);
          failure ??= isCancellation(err) ? err : new Error(`step ${step.id}: ${s.lastError}`);
          if (v3 && !isCancellation(err) && failedStep === undefined && spec.onFailure !== 'keep') {
            // The steps still running are cancelled; each reports what it made before compensation
            // starts. A mesh kept on failure is left to be looked at as it gets: its steps finish.
            failedStep = step.id;
            steps.cancel();
          }
        } finally {
          s.endedAt = now();
          running.delete(step.id);
        }
      })();
      running.set(step.id, p);
    };
    for (;;) {
      if (failure === undefined && !teardownRequested && stopReason === undefined) {
        for (const step of plan.steps) {
          if (stepStatus(step.id).state === 'pending' && step.dependsOn.every((d) => done.has(d))) start(step);
        }
      }
      if (running.size === 0) break;
      // Steps already running finish (and record what they created) before compensation starts.
      await Promise.race(running.values());
    }
    if (failure !== undefined) throw failure;
    if (teardownRequested)
      throw ApplicationFailure.create({
        type: 'TeardownRequested',
        message: 'teardown requested while provisioning',
        nonRetryable: true,
      });
    const failed = status.checks.filter((c) => c.status === 'failed');
    if (failed.length) {
      throw ApplicationFailure.create({
        type: 'VerificationFailed',
        message: failed.map((c) => `${c.name}${c.cluster ? ` (${c.cluster})` : ''}: ${c.detail}`).join('; '),
        nonRetryable: true,
      });
    }
  }

  /** Undoes one ledger entry; a failure is recorded, never dropped. */
  async function undoEntry(entry: LedgerEntry): Promise<void> {
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
    const req = { mesh: spec.name, spec, resource: r };
    try {
      let out: UndoOutcome | void = undefined;
      try {
        if (!abandonHost) out = await onHost(() => undoActivity(summaryText)(req));
      } catch (err) {
        if (!(err instanceof HostAbandoned)) throw err;
      }
      if (abandonHost) {
        // Only the host reaches its local clusters and its state directory; the rest, any worker.
        if (needsHost(r)) {
          status.leftBehind.push({
            resource: r,
            error:
              `on host ${status.host}, abandoned by down --abandon-host: ` +
              'remove it there (meshflow gc on that host)',
          });
          return;
        }
        out = await undoActivity(`${summaryText} (any worker)`, false)(req);
      }
      if (out?.untouched.length) (status.untouched ??= []).push(...out.untouched);
      status.ledger = status.ledger.filter((l) => l !== entry);
    } catch (err) {
      status.leftBehind.push({ resource: r, error: errorText(err) });
    }
  }

  /** A resource only the mesh's host can remove: a file in its state directory, a local cluster or what is in one. */
  function needsHost(r: Resource): boolean {
    if (r.type === 'file') return true;
    if (r.type === 'firewall' || r.type === 'trust') return false; // a cloud's, a management cluster's
    return spec.clusters.find((c) => c.name === r.cluster)?.provider === 'local';
  }

  /**
   * Undoes the ledger newest first. Release 2 runs one lane per cluster in parallel (objects in
   * different clusters do not depend on each other), skips the objects inside a local cluster
   * that is itself deleted, and removes host files (the CAs) last.
   */
  async function undoAll(): Promise<void> {
    const entries = [...status.ledger].reverse();
    for (const e of entries) stepStatus(e.step).state = 'undoing';
    if (!v2) {
      for (const e of entries) await undoEntry(e);
    } else {
      const provider = (cluster: string) => spec.clusters.find((c) => c.name === cluster)?.provider;
      const goneWhole = new Set(
        entries.flatMap((e) =>
          // A cluster meshflow made is deleted whole, with everything in it.
          e.resource.type === 'cluster' && provider(e.resource.cluster) !== 'existing' ? [e.resource.cluster] : [],
        ),
      );
      const lanes = new Map<string, LedgerEntry[]>();
      for (const e of entries) {
        if (e.resource.type === 'objects' && goneWhole.has(e.resource.cluster)) {
          status.ledger = status.ledger.filter((l) => l !== e); // deleted with its cluster
          continue;
        }
        const lane = resourceCluster(e.resource);
        lanes.set(lane, [...(lanes.get(lane) ?? []), e]);
      }
      const runLane = async (lane: LedgerEntry[]) => {
        for (const e of lane) await undoEntry(e);
      };
      await Promise.all([...lanes].filter(([lane]) => lane !== '').map(([, lane]) => runLane(lane)));
      await runLane(lanes.get('') ?? []);
    }
    const failedSteps = new Set(
      entries.filter((e) => status.leftBehind.some((l) => l.resource === e.resource)).map((e) => e.step),
    );
    for (const e of entries) stepStatus(e.step).state = failedSteps.has(e.step) ? 'undo-failed' : 'undone';
  }
}
