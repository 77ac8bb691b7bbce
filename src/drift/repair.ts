// Which plan steps repair what verify or a drift check found. A step re-run re-applies what it
// owns (server-side apply with force takes hand edits back), so a broken object is repaired by
// the step that made it; what no step makes (a load balancer, a pod, rights someone else
// granted, an address in the spec) gets the fix a person must make instead. Pure.
import { buildPlan, linkPairs } from '../plan/plan';
import type { MeshSpec } from '../spec/schema';
import type { CheckResult } from '../steps/contract';
import type { DriftReport } from './types';

export interface Repair {
  check: string;
  cluster?: string;
  /** Plan steps whose re-run repairs the check, in plan order; empty when none can. */
  steps: string[];
  /** What a person must do, when no step can repair it. */
  fix?: string;
}

const secretOf = (source: string) => new RegExp(`istio-remote-secret-${source}(?![a-z0-9-])`);

/** The owner steps of one failed check, or a fix text when no step of this plan makes what is wrong. */
function ownersOf(spec: MeshSpec, check: CheckResult): string[] | string {
  const c = check.cluster;
  const detail = check.detail;
  const manual = check.hint ?? `no step repairs ${check.name}: ${detail}`;
  switch (check.name) {
    case 'cacerts':
    case 'network-label':
      // The cacerts step applies istio-system with its network label, then the secret.
      return [`cacerts:${c}`];
    case 'same-root':
      return spec.clusters.map((x) => `cacerts:${x.name}`);
    case 'istiod-available':
      // Gone: the control plane re-applies it. There but not available: images, resources, a crash.
      return /not available/.test(detail) ? manual : [`control-plane:${c}`];
    case 'eastwest-address':
      // A pending load balancer is the cluster's to provide; a missing Service is the step's.
      return /no address/.test(detail) ? manual : [`eastwest-gateway:${c}`];
    case 'cross-network-gateway':
      return [`expose-services:${c}`];
    case 'remote-secret': {
      // Rights beyond reading come from bindings meshflow did not make; an unreachable address is the spec's.
      if (/ may /.test(detail) || (/cannot read/.test(detail) && !/token was rejected/.test(check.hint ?? ''))) {
        return manual;
      }
      const pairs = linkPairs(spec).filter(([, target]) => target === c);
      const named = pairs.filter(([source]) => secretOf(source).test(detail));
      return (named.length ? named : pairs).map(([source, target]) => `link:${source}->${target}`);
    }
    case 'discovery': {
      // istiod reads other clusters through the remote secrets in its own cluster.
      if (!/does not read/.test(detail)) return manual;
      const pairs = linkPairs(spec).filter(([source, target]) => target === c && detail.includes(`${source} (`));
      return pairs.length ? pairs.map(([source, target]) => `link:${source}->${target}`) : manual;
    }
    default:
      // cross-network-endpoints, injection, analyze, traffic, ingress: Istio's view of objects
      // the checks above cover, or pods; their hints say what to look at.
      return manual;
  }
}

/** For each failed check, the plan steps to re-run, or the fix a person must make. */
export function repairsForChecks(spec: MeshSpec, checks: CheckResult[]): Repair[] {
  const order = buildPlan(spec).steps.map((s) => s.id);
  return checks
    .filter((r) => r.status === 'failed')
    .map((r) => {
      const owners = ownersOf(spec, r);
      const where = r.cluster ? { cluster: r.cluster } : {};
      if (typeof owners === 'string') return { check: r.name, ...where, steps: [], fix: owners };
      const steps = order.filter((id) => owners.includes(id));
      if (!steps.length)
        return { check: r.name, ...where, steps, fix: r.hint ?? `no step of this mesh repairs ${r.name}` };
      return { check: r.name, ...where, steps };
    });
}

/** Every step any failed check asks to re-run, once each, in plan order (dependencies first). */
export function stepsForChecks(spec: MeshSpec, checks: CheckResult[]): string[] {
  const wanted = new Set(repairsForChecks(spec, checks).flatMap((r) => r.steps));
  return buildPlan(spec)
    .steps.map((s) => s.id)
    .filter((id) => wanted.has(id));
}

/**
 * The steps to re-run for a drift report: the owners of missing and changed objects, once each,
 * in the report's order (ledger order: the order the steps first ran). Foreign objects are not
 * meshflow's to overwrite and unreachable clusters say nothing: both are reported only.
 */
export function stepsForDrift(report: DriftReport): string[] {
  const steps: string[] = [];
  for (const item of report.items) {
    if ((item.kind === 'missing' || item.kind === 'changed') && item.step && !steps.includes(item.step)) {
      steps.push(item.step);
    }
  }
  return steps;
}
