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
import { notFound } from './result';
import { Agents, DEFAULTS, type VerifyOptions, clients, describeError, runCheck } from './run';
import type { TrafficPort } from './traffic';

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
    const opts = { ...DEFAULTS, ...rest };
    const configs = Object.fromEntries(spec.clusters.map((c) => [c.name, kubeFor(access(c.name)).config]));
    const api = Object.fromEntries(spec.clusters.map((c) => [c.name, clients(configs[c.name], opts, agents)]));
    const read = new Map<string, { secret?: k8s.V1Secret; absent?: string }>();
    const ctx: CheckContext = {
      spec,
      plan: buildPlan(spec),
      layout: sampleLayout(spec),
      access,
      kubeConfig: (cluster) => configs[cluster],
      api,
      clientsFor: (kc) => clients(kc, opts, agents),
      check: (name, cluster, fn) => runCheck(name, cluster, fn, heartbeat, opts),
      // Only answers are kept: a transient error is retried by the next caller's `call`.
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
    const results: CheckResult[] = [];
    for (const check of REGISTRY.filter((c) => !only || only.includes(c.code))) {
      for (const r of await check.run(ctx)) results.push({ code: check.code, ...r });
    }
    return results;
  } finally {
    agents.destroy();
  }
}
