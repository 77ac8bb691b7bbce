// `verify`: every check of the registry (./registry.ts) that applies to the mesh, or those a user
// named by code, each reported on its own with its code, and with the likely cause and fix when it
// fails. Traffic checks need running pods and are reported as not supported on clusters on this
// machine, never as passed. How a check's requests are retried, and when a verification gives up
// and is retried by Temporal instead of reporting a failure, is ./run.ts.
import type * as k8s from '@kubernetes/client-node';
import type { Heartbeat } from '../adapters/kube';
import { type ClusterAccess, kubeFor } from '../adapters/providers';
import { ISTIO_NAMESPACE } from '../istio/manifests';
import { buildPlan } from '../plan/plan';
import type { MeshSpec } from '../spec/schema';
import type { CheckResult } from '../steps/contract';
import type { CheckContext } from './context';
import { REGISTRY } from './registry';
import { sampleLayout } from './sample-layout';
import { ChecksUnavailableError, notFound } from './result';
import { Agents, DEFAULTS, type VerifyOptions, clients, describeError, runCheck } from './run';
import type { TrafficPort } from './traffic';
import { allSettledInOrder, limiter } from '../util/limit';

/** Verdicts judged at once (each one or a few API requests, a port-forward to istiod, istioctl analyze). */
const CHECKS_AT_ONCE = 8;

export interface VerifyScope {
  /** Codes of the checks to run (catalog codes, e.g. MF0101); all when absent. */
  only?: readonly string[];
}

export async function verifyMesh(
  spec: MeshSpec,
  access: (cluster: string) => ClusterAccess,
  traffic: TrafficPort,
  heartbeat: Heartbeat,
  options: VerifyOptions & VerifyScope = {},
): Promise<CheckResult[]> {
  const agents = new Agents();
  try {
    const { only, ...rest } = options;
    // Once one check cannot judge (its errors outlasted the budget), the verification fails and is
    // retried whole: the others stop at once rather than spend their own budgets meanwhile.
    const giveUp = new AbortController();
    const signal = rest.signal ? AbortSignal.any([rest.signal, giveUp.signal]) : giveUp.signal;
    const opts = { ...DEFAULTS, ...rest, signal };
    const configs = Object.fromEntries(spec.clusters.map((c) => [c.name, kubeFor(access(c.name)).config]));
    const api = Object.fromEntries(spec.clusters.map((c) => [c.name, clients(configs[c.name], opts, agents)]));
    const read = new Map<string, { secret?: k8s.V1Secret; absent?: string }>();
    const slots = limiter(CHECKS_AT_ONCE);
    const ctx: CheckContext = {
      spec,
      plan: buildPlan(spec),
      layout: sampleLayout(spec),
      access,
      kubeConfig: (cluster) => configs[cluster],
      api,
      clientsFor: (kc) => clients(kc, opts, agents),
      check: (name, cluster, fn) => slots(() => runCheck(name, cluster, fn, heartbeat, opts)),
      // Only answers are kept, and each check reads with its own `call`: a check never waits on
      // another's retries, which its own budget would not count.
      async cacerts(cluster, call) {
        let got = read.get(cluster);
        if (!got) {
          try {
            got = {
              secret: await call(() =>
                api[cluster].core.readNamespacedSecret({ name: 'cacerts', namespace: ISTIO_NAMESPACE }),
              ),
            };
          } catch (err) {
            if (!notFound(err)) throw err;
            got = { absent: describeError(err) };
          }
          read.set(cluster, got);
        }
        return got;
      },
      traffic,
      heartbeat,
      options: opts,
      istioctl: opts.istioctl,
      meshRoot: opts.meshRoot,
      signal: opts.signal,
    };
    // Every check at once (on this machine verify took the sum of its checks, the machine mostly
    // idle); the results keep the registry's order, and a check that cannot judge (its errors
    // outlasted the budget) fails the verification only once the others have ended.
    const checks = REGISTRY.filter((c) => !only || only.includes(c.code));
    let unavailable: ChecksUnavailableError | undefined;
    const results = await allSettledInOrder(
      checks.map((check) =>
        check.run(ctx).catch((err: unknown) => {
          if (err instanceof ChecksUnavailableError && !unavailable) {
            unavailable = err;
            giveUp.abort(err);
          }
          throw err;
        }),
      ),
    ).catch((err: unknown) => {
      // What ended the verification: the activity's cancellation, else the check that could not judge.
      throw rest.signal?.aborted ? rest.signal.reason : (unavailable ?? err);
    });
    return checks.flatMap((check, i) => results[i].map((r) => ({ code: check.code, ...r })));
  } finally {
    agents.destroy();
  }
}
