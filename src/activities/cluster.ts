// create-cluster: a cluster from its provider. The cluster is tracked before it is asked for, so
// a create that fails half-way (a directory and etcd keys made, an API server that never came
// up) is deleted by compensation like a finished one.
import { providerOf } from '../providers/registry';
import { sharedNetworks } from '../plan/plan';
import type { StepRequest, StepOutcome } from '../steps/contract';
import { PermanentError } from '../util/errors';
import type { ClusterSpec } from '../spec/schema';
import { type ActivityDeps, clusterOf, runtimeOf } from './deps';
import { runStep } from './step';

export function clusterActivities(deps: ActivityDeps) {
  return {
    createCluster: (req: StepRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const c = clusterOf(req.spec, req.step.cluster!);
        if (providerOf(c.provider).createsCluster)
          ctx.track({ type: 'cluster', cluster: c.name, provider: c.provider });
        await runtimeOf(deps, c.provider).create(req.mesh, c, ctx);
        return {};
      }),

    /**
     * Checks every cluster meshflow did not make here before anything changes. All problems of all
     * clusters are reported at once, each with what to fix.
     */
    preflightMesh: (req: StepRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const checked = req.spec.clusters.filter((c) => providerOf(c.provider).preflight);
        // Whether every API server is on this machine: then loopback addresses reach each other.
        const allLocal = (await Promise.all(req.spec.clusters.map((c) => onThisMachine(deps, req.mesh, c)))).every(
          Boolean,
        );
        const results = await Promise.all(
          checked.map(async (c) => {
            ctx.heartbeat({ checking: c.name });
            const problems =
              (await runtimeOf(deps, c.provider).preflight?.(req.mesh, c, { signal: ctx.signal, allLocal })) ?? [];
            return { cluster: c.name, problems };
          }),
        );
        const failed = results.filter((r) => r.problems.length);
        if (failed.length) {
          throw new PermanentError(
            `preflight: ${failed.length} of ${checked.length} cluster(s) cannot join mesh ${req.mesh}; nothing was changed.\n` +
              failed.map((r) => r.problems.map((p) => `- ${r.cluster}: ${p}`).join('\n')).join('\n'),
          );
        }
        return { outputs: Object.fromEntries(results.map((r) => [r.cluster, 'ready to join'])) };
      }),

    /**
     * The network rule (GKE: a VPC firewall rule) that lets the pod ranges of a mesh network's
     * clusters reach each other.
     */
    createFirewall: (req: StepRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const network = req.step.target!;
        const group = sharedNetworks(req.spec).find((g) => g.network === network);
        if (!group) throw new PermanentError(`network ${network} has no two clusters that share it: no rule to make`);
        const rules = runtimeOf(deps, group.provider).networkRules;
        if (!rules) throw new PermanentError(`provider ${group.provider} of this worker makes no network rules`);
        const ref = rules.ref(req.mesh, network, group.clusters);
        ctx.track({ type: 'firewall', ...ref, ...(group.provider === 'gke' ? {} : { provider: group.provider }) });
        return { outputs: await rules.ensure(req.mesh, network, group.clusters, ctx) };
      }),
  };
}

/** Whether a cluster's API server is on this machine, known without contacting it (its provider says). */
async function onThisMachine(deps: ActivityDeps, mesh: string, c: ClusterSpec): Promise<boolean> {
  return (await runtimeOf(deps, c.provider).onThisMachine?.(mesh, c)) ?? false;
}
