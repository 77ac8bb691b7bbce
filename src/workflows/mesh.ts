// provisionMesh: walks the mesh's plan (independent steps in parallel), records everything each
// step creates in a ledger the moment it succeeds, and on failure or cancellation undoes the
// ledger in reverse in a non-cancellable scope. A ready mesh stays open until its TTL expires or
// it is told to tear down; `extend` moves the deadline, `verify` re-runs the checks, and the
// remote secrets' reader tokens are renewed before they expire. Long waits continue-as-new with
// the state they carry, so history stays bounded.
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { MeshActivities } from '../activities/types';
import { buildPlan, type Step, type StepKind } from '../plan/plan';
import { MAX_TTL_MS, formatDurationMs, parseDuration } from '../spec/duration';
import { upgradeSpec } from '../spec/upgrade';
import { MESH_SEARCH_ATTRIBUTES } from '../temporal/search-attributes';
import { extendUpdate, statusQuery, teardownSignal, verifyUpdate } from './definitions';
import type { LedgerEntry, MeshPhase, MeshStatus, ProvisionMeshInput, Resource, StepOutcome, StepStatus } from './types';

const RETRY = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5, nonRetryableErrorTypes: ['SpecError', 'PermanentError'] };

/** Per-kind activity options: long cloud operations get long timeouts and must heartbeat. */
const OPTIONS: Record<StepKind, ActivityOptions> = {
  'create-cluster': { startToCloseTimeout: '45 minutes', heartbeatTimeout: '2 minutes', retry: RETRY },
  'root-ca': { startToCloseTimeout: '2 minutes', retry: RETRY },
  cacerts: { startToCloseTimeout: '2 minutes', retry: RETRY },
  'control-plane': { startToCloseTimeout: '15 minutes', heartbeatTimeout: '1 minute', retry: RETRY },
  'eastwest-gateway': { startToCloseTimeout: '15 minutes', heartbeatTimeout: '1 minute', retry: RETRY },
  'expose-services': { startToCloseTimeout: '2 minutes', retry: RETRY },
  'expose-istiod': { startToCloseTimeout: '2 minutes', retry: RETRY },
  link: { startToCloseTimeout: '2 minutes', retry: RETRY },
  'deploy-app': { startToCloseTimeout: '10 minutes', heartbeatTimeout: '1 minute', retry: RETRY },
  verify: { startToCloseTimeout: '10 minutes', heartbeatTimeout: '1 minute', retry: { ...RETRY, maximumAttempts: 3 } },
};

const ACTIVITY: Record<StepKind, Exclude<keyof MeshActivities, 'undoResource'>> = {
  'create-cluster': 'createCluster',
  'root-ca': 'createRootCa',
  cacerts: 'installCacerts',
  'control-plane': 'installControlPlane',
  'eastwest-gateway': 'installEastWestGateway',
  'expose-services': 'exposeServices',
  'expose-istiod': 'exposeIstiod',
  link: 'linkClusters',
  'deploy-app': 'deployApp',
  verify: 'verifyMesh',
};

const undoActivities = proxyActivities<MeshActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5 },
});

/** A renewal that failed is tried again this much later (the token it replaces is still valid for a while). */
const RENEWAL_RETRY_MS = 5 * 60_000;
/** A token that outlives the mesh by this much needs no renewal. */
const TOKEN_MARGIN_MS = 10 * 60_000;

function stepActivity(step: Step, summaryText = summary(step)) {
  // On cancel, wait for the activity to finish or acknowledge: one that completes anyway has
  // created something, and its result must reach the ledger to be undone.
  return proxyActivities<MeshActivities>({
    ...OPTIONS[step.kind],
    summary: summaryText,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  })[ACTIVITY[step.kind]];
}

function summary(step: Step): string {
  return step.target ? `${step.kind} ${step.cluster} -> ${step.target}` : step.cluster ? `${step.kind} ${step.cluster}` : step.kind;
}

function errorText(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return `${err.cause.name === 'ApplicationFailure' ? (err.cause as ApplicationFailure).type ?? 'Error' : err.cause.name}: ${err.cause.message}`;
  return err instanceof Error ? err.message : String(err);
}

export async function provisionMesh(input: ProvisionMeshInput): Promise<MeshStatus> {
  const spec = upgradeSpec(input.spec);
  const plan = buildPlan(spec);
  const now = () => new Date(Date.now()).toISOString();
  const status: MeshStatus = input.carried ?? {
    mesh: spec.name,
    phase: 'provisioning',
    provider: [...new Set(spec.clusters.map((c) => c.provider))].join(','),
    clusters: spec.clusters.map((c) => c.name),
    startedAt: now(),
    steps: plan.steps.map((s): StepStatus => ({ id: s.id, kind: s.kind, cluster: s.cluster, target: s.target, state: 'pending' })),
    ledger: [],
    checks: [],
    leftBehind: [],
  };
  const stepStatus = (id: string) => status.steps.find((s) => s.id === id)!;
  const request = (step: Step) => ({ mesh: spec.name, spec, step: { id: step.id, kind: step.kind, cluster: step.cluster, target: step.target } });
  const record = (step: string, resources: Resource[]) => {
    for (const resource of resources) {
      // A step run again (a token renewal) reports what it already created: one entry is enough.
      const known = status.ledger.some((l) => l.step === step && JSON.stringify(l.resource) === JSON.stringify(resource));
      if (!known) status.ledger.push({ step, resource, createdAt: now() });
    }
  };
  let teardownRequested = false;
  let deadlineMoved = false;

  const setPhase = (phase: MeshPhase) => {
    status.phase = phase;
    upsertSearchAttributes({ [MESH_SEARCH_ATTRIBUTES.phase.name]: [phase] });
  };
  upsertSearchAttributes({
    [MESH_SEARCH_ATTRIBUTES.name.name]: [spec.name],
    [MESH_SEARCH_ATTRIBUTES.provider.name]: [status.provider],
    [MESH_SEARCH_ATTRIBUTES.clusterCount.name]: [spec.clusters.length],
    [MESH_SEARCH_ATTRIBUTES.phase.name]: [status.phase],
  });

  setHandler(statusQuery, () => status);
  setHandler(teardownSignal, () => {
    teardownRequested = true;
  });
  setHandler(
    extendUpdate,
    (by: string) => {
      const ms = parseDuration(by)!;
      const expires = new Date(Math.max(Date.parse(status.expiresAt ?? now()), Date.now()) + ms);
      status.expiresAt = expires.toISOString();
      deadlineMoved = true;
      return status.expiresAt;
    },
    {
      validator: (by: string) => {
        const ms = parseDuration(by);
        if (ms === undefined || ms <= 0) throw new Error(`"${by}" is not a positive duration such as 30m, 2h or 1d`);
        if (status.phase !== 'ready' && status.phase !== 'provisioning') throw new Error(`mesh ${spec.name} is ${status.phase}: nothing to extend`);
        const base = Math.max(Date.parse(status.expiresAt ?? now()), Date.now());
        if (base + ms - Date.now() > MAX_TTL_MS) throw new Error(`a mesh may live at most ${formatDurationMs(MAX_TTL_MS)} from now`);
      },
    },
  );

  setHandler(
    verifyUpdate,
    async () => {
      const step = plan.steps.find((s) => s.kind === 'verify')!;
      const out = await stepActivity(step, 'verify (requested)')(request(step));
      status.checks = out.checks ?? [];
      status.verifiedAt = now();
      return status.checks;
    },
    {
      validator: () => {
        if (status.phase !== 'ready') throw new Error(`mesh ${spec.name} is ${status.phase}: checks run on a ready mesh`);
      },
    },
  );

  if (!input.carried) {
    try {
      await CancellationScope.cancellable(() => walk());
    } catch (err) {
      status.error = isCancellation(err) ? 'cancelled' : errorText(err);
      if (spec.onFailure === 'keep' && !isCancellation(err)) {
        for (const s of status.steps) if (s.state === 'done') s.state = 'kept';
        setPhase('kept');
        return status;
      }
      setPhase('compensating');
      await CancellationScope.nonCancellable(() => undoAll());
      setPhase(status.leftBehind.length ? 'failed' : 'deleted');
      if (isCancellation(err)) throw err;
      throw ApplicationFailure.create({
        type: 'MeshProvisioningFailed',
        message: `mesh ${spec.name} failed: ${status.error}. ` + (status.leftBehind.length ? `Could not remove ${status.leftBehind.length} resource(s): see status.leftBehind.` : 'Everything it created was removed.'),
        nonRetryable: true,
      });
    }
    status.readyAt = now();
    status.expiresAt ??= new Date(Date.now() + parseDuration(spec.ttl)!).toISOString();
    setPhase('ready');
  }

  // Ready: wait for the deadline (which `extend` may move) or a teardown request, renewing
  // reader tokens on the way.
  try {
    for (;;) {
      const left = Date.parse(status.expiresAt!) - Date.now();
      if (left <= 0 || teardownRequested) break;
      const renewIn = nextRenewal() - Date.now();
      if (renewIn <= 0) {
        await renewTokens();
        continue;
      }
      deadlineMoved = false;
      await condition(() => teardownRequested || deadlineMoved || workflowInfo().continueAsNewSuggested, Math.min(left, renewIn));
      if (workflowInfo().continueAsNewSuggested && !teardownRequested) {
        await condition(allHandlersFinished); // a running verify or extend finishes first
        await continueAsNew<typeof provisionMesh>({ spec, carried: status });
      }
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
  }
  setPhase('tearing-down');
  await CancellationScope.nonCancellable(() => undoAll());
  setPhase(status.leftBehind.length ? 'failed' : 'deleted');
  return status;

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
    const due = plan.steps.filter((step) => step.kind === 'link' && Date.parse(stepStatus(step.id).outputs?.tokenRenewAt ?? '') <= Date.now());
    await Promise.all(
      due.map(async (step) => {
        const s = stepStatus(step.id);
        try {
          const out = await stepActivity(step, `renew token ${step.cluster} -> ${step.target}`)(request(step));
          record(step.id, out.resources);
          s.outputs = { ...out.outputs, renewedAt: now() };
          s.lastError = undefined;
        } catch (err) {
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
    const start = (step: Step) => {
      const s = stepStatus(step.id);
      s.state = 'running';
      s.startedAt = now();
      const act = stepActivity(step);
      const p = (async () => {
        try {
          const out: StepOutcome = await act(request(step));
          // Record what was created before anything else can fail: it must be undone whatever happens next.
          record(step.id, out.resources);
          if (out.checks) status.checks.push(...out.checks);
          s.outputs = out.outputs;
          s.attempts = out.attempt;
          s.state = 'done';
          done.add(step.id);
        } catch (err) {
          // A step that fails after creating something says what in its failure details.
          const details = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure ? (err.cause.details?.[0] as { resources?: Resource[] } | undefined) : undefined;
          record(step.id, details?.resources ?? []);
          s.state = 'failed';
          s.lastError = errorText(err);
          failure ??= isCancellation(err) ? err : new Error(`step ${step.id}: ${s.lastError}`);
        } finally {
          s.endedAt = now();
          running.delete(step.id);
        }
      })();
      running.set(step.id, p);
    };
    for (;;) {
      if (failure === undefined && !teardownRequested) {
        for (const step of plan.steps) {
          if (stepStatus(step.id).state === 'pending' && step.dependsOn.every((d) => done.has(d))) start(step);
        }
      }
      if (running.size === 0) break;
      // Steps already running finish (and record what they created) before compensation starts.
      await Promise.race(running.values());
    }
    if (failure !== undefined) throw failure;
    if (teardownRequested) throw ApplicationFailure.create({ type: 'TeardownRequested', message: 'teardown requested while provisioning', nonRetryable: true });
    const failed = status.checks.filter((c) => c.status === 'failed');
    if (failed.length) {
      throw ApplicationFailure.create({ type: 'VerificationFailed', message: failed.map((c) => `${c.name}${c.cluster ? ` (${c.cluster})` : ''}: ${c.detail}`).join('; '), nonRetryable: true });
    }
  }

  /** Undoes the ledger step by step, newest first; failures are recorded, never dropped. */
  async function undoAll(): Promise<void> {
    const entries = [...status.ledger].reverse();
    const byStep: Array<[string, LedgerEntry[]]> = [];
    for (const e of entries) {
      const last = byStep[byStep.length - 1];
      if (last && last[0] === e.step) last[1].push(e);
      else byStep.push([e.step, [e]]);
    }
    for (const [stepId, stepEntries] of byStep) {
      const s = stepStatus(stepId);
      s.state = 'undoing';
      let failed = false;
      for (const entry of stepEntries) {
        try {
          await undoActivities.undoResource({ mesh: spec.name, spec, resource: entry.resource });
          status.ledger = status.ledger.filter((l) => l !== entry);
        } catch (err) {
          failed = true;
          status.leftBehind.push({ resource: entry.resource, error: errorText(err) });
        }
      }
      s.state = failed ? 'undo-failed' : 'undone';
    }
  }
}

