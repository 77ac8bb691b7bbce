// TEST DOUBLE of the mesh activities, for workflow-logic tests on the time-skipping server: each
// step "creates" one resource named after it, and steps or undos can be told to fail. Every call
// is recorded so tests can check exactly what ran and in which order.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { HostActivities } from '../../src/activities/host';
import type {
  ForgetRequest,
  MeshActivities,
  RefreshTrustRequest,
  RootRequest,
  RotateIntermediateRequest,
  RevisionRequest,
  UndoRequest,
} from '../../src/activities/types';
import { everyStep } from '../../src/workflows/activity-names';
import type { Plan } from '../../src/plan/plan';
import { parseMeshSpec } from '../../src/spec/load';
import type { MeshSpec } from '../../src/spec/schema';
import type { CheckResult, Resource, StepOutcome, StepRequest, VerifyRequest } from '../../src/steps/contract';
import { checkByCode } from '../../src/checks/catalog';
import type { DriftItem, DriftKind, DriftReport } from '../../src/drift/types';

export interface Script {
  /** Step ids that fail permanently. */
  failSteps?: string[];
  /** Resource paths whose undo always fails. */
  failUndo?: string[];
  /** Step ids that block until cancelled (to test cancellation mid-flight). */
  hangSteps?: string[];
  /** Link steps issue reader tokens that live this long (renewed at two thirds, as the real ones). */
  tokenLifetimeMs?: number;
  /**
   * Resources as the real steps make them: a cluster per create-cluster, objects in their cluster
   * (a link's in its target), a file for the root CA. Default: one file per step, named after it.
   */
  realistic?: boolean;
  /** Step ids that fail after creating their resource, reporting it only in their trace. */
  failAfterCreate?: string[];
  /** Steps that fail (after creating, as failAfterCreate) when this says so of their request. */
  failIf?: (req: StepRequest) => boolean;
  /** A requested verify (not the first) waits for this before it answers. */
  holdVerify?: Promise<void>;
  /**
   * What the next drift checks find, one entry per check (then nothing): objects of the given steps
   * (realistic resources: the step's ConfigMap in its cluster), missing unless another kind is given.
   */
  drift?: Array<Array<{ step: string; cluster: string; kind?: DriftKind }>>;
  /** Failed checks the next verify runs report beside same-root, one entry per run (then none). */
  failChecks?: CheckResult[][];
  /** A drift check waits for this before it answers. */
  holdDrift?: Promise<void>;
  /** This many drift baselines fail (for good) before one succeeds. */
  failBaselines?: number;
  /** Cacerts steps and rotations report an intermediate that lives this long (server time); default none. */
  caValidityMs?: number;
  /** Clusters whose intermediate rotation fails (RotationNotTakenUp, the previous one kept). */
  failRotate?: string[];
  /** Clusters whose switch to a new revision fails (its pods not injected by it): the upgrade rolls back. */
  failSwitch?: string[];
}

/** The resource a step "creates" under a realistic script; its undo is recorded as `undo <step id>`. */
function realisticResource(req: StepRequest): Resource {
  const { id, kind, cluster, target } = req.step;
  if (kind === 'root-ca') return { type: 'file', path: id };
  if (kind === 'create-cluster') return { type: 'cluster', cluster: cluster!, provider: 'local' };
  return {
    type: 'objects',
    cluster: target ?? cluster!,
    objects: [{ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'fake', name: id }],
  };
}

/** The step id a fake resource stands for. */
export function fakeResourceStep(r: Resource): string {
  if (r.type === 'file') return r.path;
  if (r.type === 'cluster') return `create-cluster:${r.cluster}`;
  if (r.type === 'firewall') return `firewall:${r.network}`;
  if (r.type === 'trust') return `trust:${r.mesh}`;
  return r.objects[0].name;
}

/** A token a link step issued, in workflow (server) time. */
export interface IssuedToken {
  step: string;
  issuedAt: number;
  expiresAt: number;
}

export class FakeActivities {
  readonly scripts = new Map<string, Script>();
  readonly calls = new Map<string, string[]>();
  readonly tokens = new Map<string, IssuedToken[]>();
  /** Drift baselines taken and checks made, by mesh ("baseline", "check"), apart from the steps' calls. */
  readonly driftCalls = new Map<string, string[]>();
  /** Each intermediate rotated: "<mesh> <cluster> g<n>: <the certFile of the spec's root CA, or own>". */
  readonly signers: string[] = [];

  private recordDrift(mesh: string, call: string) {
    this.driftCalls.set(mesh, [...(this.driftCalls.get(mesh) ?? []), call]);
  }

  driftCallsOf(mesh: string): string[] {
    return this.driftCalls.get(mesh) ?? [];
  }

  private record(mesh: string, call: string) {
    this.calls.set(mesh, [...(this.calls.get(mesh) ?? []), call]);
  }

  callsOf(mesh: string): string[] {
    return this.calls.get(mesh) ?? [];
  }

  /** The step ids the mesh ran, in order. */
  runsOf(mesh: string): string[] {
    return this.callsOf(mesh)
      .filter((c) => c.startsWith('run '))
      .map((c) => c.slice(4));
  }

  /** What the mesh undid (fake resource paths), in order. */
  undosOf(mesh: string): string[] {
    return this.callsOf(mesh)
      .filter((c) => c.startsWith('undo '))
      .map((c) => c.slice(5));
  }

  private async step(req: StepRequest): Promise<StepOutcome> {
    const script = this.scripts.get(req.mesh) ?? {};
    this.record(req.mesh, `run ${req.step.id}`);
    if (script.hangSteps?.includes(req.step.id)) {
      // Runs until cancelled; cancellation reaches an activity through its heartbeats.
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat(), 100);
      try {
        await ctx.cancelled;
      } catch (err) {
        this.record(req.mesh, `cancelled ${req.step.id}`);
        throw err;
      } finally {
        clearInterval(beat);
      }
    }
    if (
      req.step.kind === 'verify' &&
      script.holdVerify &&
      this.callsOf(req.mesh).filter((c) => c === 'run verify').length > 1
    ) {
      await script.holdVerify;
    }
    const resources: Resource[] =
      req.step.kind === 'verify'
        ? []
        : [script.realistic ? realisticResource(req) : { type: 'file', path: req.step.id }];
    if (script.failSteps?.includes(req.step.id)) {
      throw ApplicationFailure.create({
        type: 'PermanentError',
        message: `injected failure in ${req.step.id}`,
        nonRetryable: true,
      });
    }
    if (script.failAfterCreate?.includes(req.step.id) || script.failIf?.(req)) {
      throw ApplicationFailure.create({
        type: 'PermanentError',
        message: `injected failure in ${req.step.id} after creating`,
        nonRetryable: true,
        details: [{ resources }],
      });
    }
    let outputs: Record<string, string> | undefined;
    if (req.step.kind === 'link' && script.tokenLifetimeMs) {
      // Server time, not this process's clock: the time-skipping server moves only the former.
      const issuedAt = Context.current().info.currentAttemptScheduledTimestampMs;
      const expiresAt = issuedAt + script.tokenLifetimeMs;
      this.tokens.set(req.mesh, [...(this.tokens.get(req.mesh) ?? []), { step: req.step.id, issuedAt, expiresAt }]);
      outputs = {
        tokenExpiresAt: new Date(expiresAt).toISOString(),
        tokenRenewAt: new Date(issuedAt + (script.tokenLifetimeMs * 2) / 3).toISOString(),
      };
    }
    if (req.step.kind === 'cacerts' && script.caValidityMs) outputs = this.intermediate(req.step.cluster!, 1, script);
    if (req.step.kind === 'root-ca' && script.caValidityMs)
      outputs = { rootGeneration: '1', rootFingerprint: 'root-1' };
    return {
      resources,
      attempt: 1,
      outputs,
      checks:
        req.step.kind === 'verify' && (req as VerifyRequest).only
          ? (req as VerifyRequest).only!.map((code) => ({
              code,
              name: checkByCode(code)!.name,
              status: 'passed' as const,
              detail: `fake, run ${this.callsOf(req.mesh).filter((c) => c === 'run verify').length}`,
            }))
          : req.step.kind === 'verify'
            ? [
                {
                  name: 'same-root',
                  status: 'passed',
                  detail: `fake, run ${this.callsOf(req.mesh).filter((c) => c === 'run verify').length}`,
                },
                ...(script.failChecks?.shift() ?? []),
              ]
            : undefined,
    };
  }

  /** The outputs of a cacerts step or rotation: generation, fake fingerprint, expiry in server time. */
  private intermediate(cluster: string, generation: number, script: Script): Record<string, string> {
    const issuedAt = Context.current().info.currentAttemptScheduledTimestampMs;
    return {
      caGeneration: String(generation),
      caFingerprint: `fake-${cluster}-${generation}`,
      caNotAfter: new Date(issuedAt + (script.caValidityMs ?? 730 * 86_400_000)).toISOString(),
    };
  }

  /**
   * An upgrade's work on one cluster: recorded as "<what> <cluster> <revision>"; an install leaves
   * one marker resource (the revision's objects), which the ledger then holds; `failSwitch` names
   * clusters whose workloads are not injected by a new revision (the wave's verify never runs).
   */
  private async revisionStep(req: RevisionRequest, what: string): Promise<StepOutcome> {
    const rev = req.revision ?? 'default';
    this.record(req.mesh, `${what} ${req.step.cluster} ${rev}`);
    const script = this.scripts.get(req.mesh) ?? {};
    if (what === 'switch' && req.revision && script.failSwitch?.includes(req.step.cluster!))
      throw ApplicationFailure.create({
        type: 'RevisionNotInjecting',
        message: `injected: pods of ${req.step.cluster} are not injected by revision ${rev}`,
        nonRetryable: true,
      });
    const resources: Resource[] =
      what === 'install-revision' ? [{ type: 'file', path: `revision:${rev}:${req.step.cluster}` }] : [];
    return { resources, attempt: 1, outputs: { revision: rev, version: req.version } };
  }

  activities(): MeshActivities & HostActivities {
    const step = (req: StepRequest) => this.step(req);
    return {
      // The mesh's steps stay on the queue the test's worker polls.
      claimHost: async () => ({ host: 'test-host', taskQueue: Context.current().info.taskQueue }),
      ...everyStep(step),
      rotateIntermediate: async (req: RotateIntermediateRequest) => {
        const script = this.scripts.get(req.mesh) ?? {};
        this.record(req.mesh, `rotate ${req.step.cluster} g${req.generation}`);
        this.signers.push(
          `${req.mesh} ${req.step.cluster} g${req.generation}: ${req.spec.trust.rootCa?.certFile ?? 'own'}`,
        );
        if (script.failRotate?.includes(req.step.cluster!)) {
          throw ApplicationFailure.create({
            type: 'RotationNotTakenUp',
            message: `injected: the new intermediate of ${req.step.cluster} was not taken up`,
            nonRetryable: true,
          });
        }
        const outputs = { ...this.intermediate(req.step.cluster!, req.generation, script), caTakenUp: 'test double' };
        return { resources: [], attempt: 1, outputs };
      },
      addRoot: async (req: RootRequest): Promise<StepOutcome> => {
        const far = new Date(Date.now() + 3650 * 86_400_000).toISOString();
        const current = req.spec.trust.rootCa;
        if (current && req.rootCa) {
          // A user's root (fingerprints named after the files): checked, then both trusted.
          this.record(req.mesh, `add user root ${req.rootCa.certFile} over ${current.certFile}`);
          if (req.rootCa.certFile === current.certFile)
            throw ApplicationFailure.create({
              type: 'PermanentError',
              message: `--root-cert ${req.rootCa.certFile} is the root CA mesh ${req.mesh} uses already`,
              nonRetryable: true,
            });
          return {
            resources: [],
            attempt: 1,
            outputs: {
              rootGeneration: String(req.generation),
              rootFingerprint: `fp:${req.rootCa.certFile}`,
              rootNotAfter: far,
              trustedRoots: `fp:${current.certFile},fp:${req.rootCa.certFile}`,
              newTop: `fp:${req.rootCa.certFile}`,
            },
          };
        }
        this.record(req.mesh, `add root g${req.generation}`);
        return {
          resources: [],
          attempt: 1,
          outputs: {
            rootGeneration: String(req.generation),
            rootFingerprint: `root-${req.generation}`,
            rootNotAfter: far,
          },
        };
      },
      retireRoots: async (req: RootRequest) => {
        const user = req.spec.trust.rootCa;
        if (user) {
          this.record(req.mesh, `retire user roots but ${user.certFile}`);
          return { resources: [], attempt: 1, outputs: { rootsRetired: 'the old' } };
        }
        this.record(req.mesh, `retire roots before g${req.generation}`);
        return { resources: [], attempt: 1, outputs: { rootsRetired: String(req.generation - 1) } };
      },
      refreshTrust: async (req: RefreshTrustRequest) => {
        this.record(req.mesh, `trust ${req.step.cluster} ${req.roots.join('+')}`);
        return {
          resources: [],
          attempt: 1,
          outputs: { trustedRoots: req.roots.join(','), trustTakenUp: 'test double' },
        };
      },
      installRevision: async (req: RevisionRequest) => this.revisionStep(req, 'install-revision'),
      switchRevision: async (req: RevisionRequest) => this.revisionStep(req, 'switch'),
      stopRevision: async (req: RevisionRequest) => this.revisionStep(req, 'stop-revision'),
      awaitClusterForgotten: async (req: ForgetRequest) => {
        this.record(req.mesh, `forget ${req.cluster}`);
        return { forgotten: true, afterMs: 0, detail: 'test double: no istiod to ask' };
      },
      undoResource: async (req: UndoRequest) => {
        const p = fakeResourceStep(req.resource);
        this.record(req.mesh, `undo ${p}`);
        if (this.scripts.get(req.mesh)?.failUndo?.includes(p)) {
          throw ApplicationFailure.create({
            type: 'UndoFailed',
            message: `injected undo failure for ${p}`,
            nonRetryable: true,
          });
        }
        return { untouched: [] };
      },
      // The meshes of these tests exist only in the double's records: drift is what the script says.
      baselineDrift: async (req) => {
        this.recordDrift(req.mesh, 'baseline');
        const script = this.scripts.get(req.mesh) ?? {};
        if (script.failBaselines) {
          script.failBaselines--;
          throw ApplicationFailure.create({ type: 'PermanentError', message: 'injected', nonRetryable: true });
        }
        return { baseline: { takenAt: new Date().toISOString(), objects: {} }, requests: 0, unreachable: [] };
      },
      checkDrift: async (req): Promise<DriftReport> => {
        this.recordDrift(req.mesh, 'check');
        const script = this.scripts.get(req.mesh) ?? {};
        await script.holdDrift;
        const found = script.drift?.shift() ?? [];
        const items = found.map(({ step, cluster, kind = 'missing' }): DriftItem => ({
          cluster,
          object: kind === 'unreachable' ? '' : `${cluster}/v1/ConfigMap/fake/${step}`,
          kind,
          step: kind === 'unreachable' ? '' : step,
          detail: `test double: ${kind}`,
        }));
        const objects = req.ledger.filter((l) => l.resource.type === 'objects').length;
        return { checkedAt: new Date().toISOString(), objects, requests: 0, items };
      },
    };
  }
}

/**
 * Undo is "reverse order" in the sense that matters: exactly `created` is undone, and every step
 * before anything it depended on (parallel steps finish in any order, so theirs is free).
 */
export function expectUndoneInReverse(undone: string[], created: string[], plan: Plan): void {
  expect([...undone].sort()).toEqual([...created].sort());
  const deps = new Map(plan.steps.map((s) => [s.id, s.dependsOn]));
  const reach = (id: string, seen = new Set<string>()): Set<string> => {
    for (const d of deps.get(id) ?? []) if (!seen.has(d)) reach(d, seen.add(d));
    return seen;
  };
  undone.forEach((id, i) => {
    for (const dep of reach(id)) {
      if (undone.includes(dep))
        expect({ step: id, undoneBefore: dep, ok: undone.indexOf(dep) > i }).toEqual({
          step: id,
          undoneBefore: dep,
          ok: true,
        });
    }
  });
}

/** The two-cluster, two-network mesh the workflow tests run (`extra`: more top-level YAML). */
/** The spec text of a two-cluster mesh on two networks (east, west), with `extra` lines appended. */
export const twoClusterYaml = (name: string, extra = '') => `apiVersion: meshflow.dev/v1alpha1
kind: Mesh
name: ${name}
clusters:
  - { name: east, provider: local, network: n1 }
  - { name: west, provider: local, network: n2 }
${extra}`;

export function twoClusterMesh(name: string, extra = ''): MeshSpec {
  return parseMeshSpec(twoClusterYaml(name, extra));
}
