// What `meshflow apply` changes in a running mesh: which changes of its spec can be made in place
// (and why the others cannot, by field), and the plan of the change as steps: added, run again,
// removed. Pure, like ./plan.ts: the apply update's validator and handler run it inside workflow
// code, and `apply --dry-run` and `plan --against` print it.
import { SAMPLE_APPS } from '../istio/sample-apps';
import type { ClusterSpec, MeshSpec } from '../spec/schema';
import { type Plan, type Step, appPlacement, buildPlan, criticalPath } from './plan';

/** A change `apply` refuses, at the field of the new spec that makes it. */
export interface ApplyProblem {
  path: Array<string | number>;
  message: string;
}

/** What one `apply` asks of a running mesh. */
export interface ApplyRequest {
  spec: MeshSpec;
  /** Clusters to remove and create again under the same name (a new provider, network or role). */
  replace?: string[];
}

/**
 * The change as steps. `added` are new to the plan, `rerun` are in both plans but with other
 * inputs (and are applied again, what they applied before and no longer apply is removed),
 * `removed` are no longer in the plan (what they created is undone). A replaced cluster's steps
 * are both removed and added.
 */
export interface PlanDelta {
  mesh: string;
  added: Step[];
  rerun: Step[];
  removed: Step[];
  addedClusters: string[];
  removedClusters: string[];
  replacedClusters: string[];
  /** Link pairs made or removed: [source, target] (target's istiod reads source). */
  linked: Array<[string, string]>;
  unlinked: Array<[string, string]>;
  /** Clusters whose sample placement changes (the app moves). */
  moved: string[];
  /** The longest chain of the steps that run (added and rerun, then verify). */
  criticalPath: { steps: string[]; estimateMs: number };
  /** Nothing to do: the spec is the running one's (but for settings that take effect without steps). */
  empty: boolean;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * A cluster's settings that a kept cluster may not change (its provider's section, addresses,
 * CIDRs). Where its files are is not among them: an existing cluster's kubeconfig file may move,
 * and `up` and `apply` copy it into the trust store under a new entry each time (`stored`); only
 * its context counts, when the new spec names one.
 */
function fixedSettings(c: ClusterSpec, context?: string): Record<string, unknown> {
  const existing = c.existing ? { context: context ?? c.existing.context } : undefined;
  return {
    local: c.local,
    existing,
    gke: c.gke,
    apiServerAddress: c.apiServerAddress,
    podCidr: c.podCidr,
    serviceCidr: c.serviceCidr,
  };
}

/**
 * Why `next` cannot replace `current` in place, by field of `next`. Empty: it can. The caller
 * checks `next` against the schema first (as `validate` does); this checks the change.
 */
/**
 * `next` with the running mesh's control-plane revision when it names none: an upgrade set it, the
 * user's file does not carry it. The same object when there is nothing to carry.
 */
export function withRevisionOf(current: MeshSpec, next: MeshSpec): MeshSpec {
  if (!current.istio.revision || next.istio.revision) return next;
  return { ...next, istio: { ...next.istio, revision: current.istio.revision } };
}

export function applyProblems(current: MeshSpec, next: MeshSpec, replace: string[] = []): ApplyProblem[] {
  const problems: ApplyProblem[] = [];
  if (next.name !== current.name) {
    problems.push({
      path: ['name'],
      message: `is "${next.name}", the running mesh is "${current.name}": a mesh is not renamed in place`,
    });
  }
  if (!same(trustIdentity(next), trustIdentity(current))) {
    problems.push({
      path: ['trust'],
      message:
        "differs from the running mesh's: its clusters' intermediates are signed by the trust it started with; " +
        'changing the root needs a rotation, not an apply',
    });
  }
  if (!same(withRevisionOf(current, next).istio, current.istio)) {
    const key = (['version', 'revision', 'topology', 'profile', 'dataPlane', 'values'] as const).find(
      (k) => !same(withRevisionOf(current, next).istio[k], current.istio[k]),
    );
    problems.push({
      path: ['istio', key ?? 'version'],
      message:
        key === 'version' || key === 'revision'
          ? `is ${next.istio[key]}, the mesh runs ${current.istio[key] ?? 'none'}: ` +
            `Istio changes version by \`meshflow upgrade ${current.name} --to VERSION\` (canary by revision), ` +
            'not by apply'
          : key === 'dataPlane'
            ? `is ${next.istio.dataPlane}, the mesh runs ${current.istio.dataPlane}: the data plane is chosen when a ` +
              'mesh is made (its workloads, gateways and checks differ); bring the mesh down and up with the new ' +
              'spec, or up a second mesh of it beside this one'
            : "differs from the running mesh's: Istio's install settings are fixed when the mesh is made",
    });
  }
  if (next.ttl !== current.ttl) {
    problems.push({
      path: ['ttl'],
      message: `is ${next.ttl}, the mesh started with ${current.ttl}: move its deadline with \`meshflow extend\``,
    });
  }
  const before = new Map(current.clusters.map((c) => [c.name, c]));
  const after = new Set(next.clusters.map((c) => c.name));
  for (const [i, name] of replace.entries()) {
    if (!before.has(name) || !after.has(name)) {
      problems.push({
        path: ['clusters'],
        message:
          `--replace ${name}: ` +
          (before.has(name) ? 'the new spec has no such cluster' : `the running mesh has no cluster ${name}`) +
          ' (replace names a cluster in both)',
      });
    }
    if (replace.indexOf(name) !== i) problems.push({ path: ['clusters'], message: `--replace ${name} given twice` });
  }
  next.clusters.forEach((c, i) => {
    const old = before.get(c.name);
    if (!old || replace.includes(c.name)) return;
    const hint = `: replace the cluster (apply --replace ${c.name}) or add one under another name`;
    for (const field of ['provider', 'network', 'role'] as const) {
      if (c[field] !== old[field]) {
        problems.push({
          path: ['clusters', i, field],
          message: `is ${c[field]}, cluster ${c.name} runs as ${old[field]}: a kept cluster's ${field} is fixed${hint}`,
        });
      }
    }
    if (c.role === 'remote' && old.role === 'remote' && c.primary !== old.primary) {
      problems.push({
        path: ['clusters', i, 'primary'],
        message: `is ${c.primary}, remote ${c.name} is served by ${old.primary}: a remote's primary is fixed${hint}`,
      });
    }
    const fixedNew = fixedSettings(c);
    const fixedOld = fixedSettings(old, c.existing && !c.existing.context ? undefined : old.existing?.context);
    const changed = Object.keys(fixedNew).find((k) => !same(fixedNew[k], fixedOld[k]) && c.provider === old.provider);
    if (changed) {
      problems.push({
        path: ['clusters', i, changed],
        message: `differs from the running cluster ${c.name}'s: its settings are fixed when it is made${hint}`,
      });
    }
  });
  // A primary that serves a remote cannot go while the remote stays (the schema also says so).
  for (const removed of current.clusters.filter((c) => !after.has(c.name) || replace.includes(c.name))) {
    const served = next.clusters.filter(
      (c) => c.role === 'remote' && c.primary === removed.name && before.has(c.name) && !replace.includes(c.name),
    );
    if (!served.length) continue;
    const i = next.clusters.indexOf(served[0]);
    problems.push({
      path: ['clusters', i, 'primary'],
      message: after.has(removed.name)
        ? `names ${removed.name}, which --replace makes anew: replace its remotes with it (--replace ${served[0].name})`
        : `names ${removed.name}, which this spec removes: remove its remotes with it, or keep it`,
    });
  }
  return problems;
}

/**
 * The trust a spec names (its root and key type), without its rotation settings, where its files
 * are kept (`stored`, a new trust store entry at each `up` or `apply`) or a root given as PEM text
 * (the running spec holds only its entry).
 */
function trustIdentity(spec: MeshSpec): unknown {
  // How long intermediates live and when they rotate change in place: they apply to the next rotation.
  const { intermediateValidity: _v, rotateBefore: _r, ...trust } = spec.trust;
  const root = trust.rootCa;
  if (!root) return trust;
  const { stored: _s, cert: _c, key: _k, chain: _ch, ...names } = root;
  return { ...trust, rootCa: names };
}

/** A cluster as its steps use it, without where its kubeconfig is kept. */
function clusterIdentity(c: ClusterSpec | undefined): unknown {
  if (!c?.existing) return c;
  const { stored: _s, kubeconfig: _k, ...existing } = c.existing;
  return { ...c, existing };
}

/** What a step does with its inputs, so a step in both plans runs again only when they differ. */
function stepInputs(spec: MeshSpec, step: Step): string {
  const cluster = (name?: string) => spec.clusters.find((c) => c.name === name);
  switch (step.kind) {
    case 'preflight':
    case 'root-ca':
      // The preflight checks every cluster (an added one too); the CAs of an added cluster are made by its cacerts.
      return step.kind === 'preflight' ? JSON.stringify(spec.clusters.map(clusterIdentity)) : '';
    case 'deploy-app': {
      const placement = appPlacement(spec);
      const parts = placement[step.cluster!] ?? [];
      const sample = parts.length ? SAMPLE_APPS[spec.app.sample as keyof typeof SAMPLE_APPS] : undefined;
      return JSON.stringify({
        sample: sample?.manifests(step.cluster!, placement),
        files: spec.app.manifests.filter((m) => m.clusters.includes(step.cluster!)).map(({ stored: _s, ...m }) => m),
      });
    }
    case 'addons':
      return JSON.stringify({ addons: spec.addons, cluster: clusterIdentity(cluster(step.cluster)) });
    case 'link':
      return JSON.stringify([clusterIdentity(cluster(step.cluster)), clusterIdentity(cluster(step.target))]);
    case 'firewall':
      return step.creates;
    case 'verify':
      return '';
    default:
      return JSON.stringify({ cluster: clusterIdentity(cluster(step.cluster)), creates: step.creates });
  }
}

/**
 * The steps that take the running mesh from `current` to `next` (which `applyProblems` accepts).
 * Verify is not among them: it runs after every change that has steps.
 */
export function diffPlans(current: MeshSpec, next: MeshSpec, replace: string[] = [], currentPlan?: Plan): PlanDelta {
  const oldPlan = currentPlan ?? buildPlan(current);
  const newPlan = buildPlan(next, { preflight: oldPlan.steps.some((s) => s.kind === 'preflight') || undefined });
  const replaced = new Set(replace);
  const touches = (s: Step) => replaced.has(s.cluster ?? '') || replaced.has(s.target ?? '');
  const oldById = new Map(oldPlan.steps.map((s) => [s.id, s]));
  const newIds = new Set(newPlan.steps.map((s) => s.id));
  const added: Step[] = [];
  const rerun: Step[] = [];
  for (const s of newPlan.steps) {
    if (s.kind === 'verify') continue;
    const old = oldById.get(s.id);
    if (!old || touches(s)) added.push(s);
    else if (stepInputs(current, old) !== stepInputs(next, s)) rerun.push(s);
  }
  const removed = oldPlan.steps.filter((s) => s.kind !== 'verify' && (!newIds.has(s.id) || touches(s)));
  const names = (spec: MeshSpec) => new Set(spec.clusters.map((c) => c.name));
  const oldNames = names(current);
  const newNames = names(next);
  const pairs = (steps: Step[]) =>
    steps.filter((s) => s.kind === 'link').map((s): [string, string] => [s.cluster!, s.target!]);
  const oldPlacement = appPlacement(current);
  const newPlacement = appPlacement(next);
  const moved = [...newNames].filter(
    (n) => oldNames.has(n) && !replaced.has(n) && !same(oldPlacement[n] ?? [], newPlacement[n] ?? []),
  );
  // The critical path of what runs: the new plan cut down to the added and rerun steps (and verify).
  const running = new Set([...added, ...rerun].map((s) => s.id));
  const verify = newPlan.steps.find((s) => s.kind === 'verify')!;
  const cut: Plan = {
    mesh: next.name,
    steps: [
      ...newPlan.steps
        .filter((s) => running.has(s.id))
        .map((s) => ({ ...s, dependsOn: s.dependsOn.filter((d) => running.has(d)) })),
      ...(running.size ? [{ ...verify, dependsOn: [...running] }] : []),
    ],
  };
  return {
    mesh: next.name,
    added,
    rerun,
    removed,
    addedClusters: [...newNames].filter((n) => !oldNames.has(n)),
    removedClusters: [...oldNames].filter((n) => !newNames.has(n)),
    replacedClusters: [...replaced],
    linked: pairs(added),
    unlinked: pairs(removed),
    moved,
    criticalPath: criticalPath(cut),
    empty: !added.length && !rerun.length && !removed.length,
  };
}

/** The delta as `apply --dry-run` and `plan --against` print it. */
export function describeDelta(delta: PlanDelta, verb = 'apply would'): string {
  if (delta.empty) return `mesh ${delta.mesh}: the spec is the running one's; nothing to change\n`;
  const lines: string[] = [`mesh ${delta.mesh}: ${verb}`];
  const list = (label: string, steps: Step[], mark: string) => {
    if (!steps.length) return;
    lines.push(`  ${label}:`);
    for (const s of steps) lines.push(`    ${mark} ${s.id}: ${s.creates}`);
  };
  if (delta.replacedClusters.length) lines.push(`  replace cluster(s) ${delta.replacedClusters.join(', ')}`);
  if (delta.addedClusters.length) lines.push(`  add cluster(s) ${delta.addedClusters.join(', ')}`);
  if (delta.removedClusters.length) lines.push(`  remove cluster(s) ${delta.removedClusters.join(', ')}`);
  if (delta.moved.length) lines.push(`  move the app in ${delta.moved.join(', ')}`);
  list('remove (unlink first, then undo newest first)', delta.removed, '-');
  list('add', delta.added, '+');
  list('apply again (re-linked, moved or changed)', delta.rerun, '~');
  if (delta.linked.length) lines.push(`  link: ${delta.linked.map(([s, t]) => `${t} reads ${s}`).join(', ')}`);
  if (delta.unlinked.length) lines.push(`  unlink: ${delta.unlinked.map(([s, t]) => `${t} reads ${s}`).join(', ')}`);
  lines.push(
    `  critical path: ${delta.criticalPath.steps.join(' -> ')} ` +
      `(~${Math.round(delta.criticalPath.estimateMs / 1000)} s)`,
  );
  return lines.join('\n') + '\n';
}
