// create-cluster: a cluster from its provider. The cluster is tracked before it is asked for, so
// a create that fails half-way (a directory and etcd keys made, an API server that never came
// up) is deleted by compensation like a finished one.
import { isLoopbackUrl } from '../util/net';
import { GkeProvider } from '../adapters/gke';
import { gkeFlatNetworks } from '../plan/plan';
import type { StepRequest, StepOutcome } from '../steps/contract';
import { PermanentError } from '../util/errors';
import type { ClusterSpec } from '../spec/schema';
import { type ActivityDeps, clusterOf, gkeProvider } from './deps';
import { runStep } from './step';

export function clusterActivities(deps: ActivityDeps) {
  return {
    createCluster: (req: StepRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const c = clusterOf(req.spec, req.step.cluster!);
        if (c.provider !== 'existing') ctx.track({ type: 'cluster', cluster: c.name, provider: c.provider });
        await deps.providers[c.provider].create(req.mesh, c, ctx);
        return {};
      }),

    /**
     * Checks every cluster meshflow did not make here before anything changes. All problems of all
     * clusters are reported at once, each with what to fix.
     */
    preflightMesh: (req: StepRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const checked = req.spec.clusters.filter((c) => c.provider !== 'local');
        // Whether every API server is on this machine: then loopback addresses reach each other.
        const allLocal = (await Promise.all(req.spec.clusters.map((c) => onThisMachine(deps, req.mesh, c)))).every(
          Boolean,
        );
        const results = await Promise.all(
          checked.map(async (c) => {
            ctx.heartbeat({ checking: c.name });
            const problems =
              (await deps.providers[c.provider].preflight?.(req.mesh, c, { signal: ctx.signal, allLocal })) ?? [];
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

    /** The VPC firewall rule that lets the pod ranges of a mesh network's GKE clusters reach each other. */
    createFirewall: (req: StepRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const network = req.step.target!;
        const group = gkeFlatNetworks(req.spec).find((g) => g.network === network);
        if (!group) throw new PermanentError(`network ${network} has no two GKE clusters: no firewall rule to make`);
        const gke = gkeProvider(deps);
        const project = group.clusters[0].gke!.project;
        ctx.track({ type: 'firewall', network, project, name: GkeProvider.firewallName(req.mesh, network) });
        const rule = await gke.ensureFirewall(req.mesh, network, group.clusters, ctx);
        return { outputs: { rule: `${rule.project}/${rule.name}`, sourceRanges: rule.sourceRanges.join(',') } };
      }),
  };
}

/**
 * Whether a cluster's API server is on this machine, known without contacting it: local clusters,
 * the GKE emulator's, and existing clusters whose address (or kubeconfig server) is loopback.
 */
async function onThisMachine(deps: ActivityDeps, mesh: string, c: ClusterSpec): Promise<boolean> {
  if (c.provider === 'local') return true;
  if (c.provider === 'gke') return gkeProvider(deps).clients.emulated;
  try {
    // The access of an existing cluster (its kubeconfig from the trust store or the file) names its server.
    const server = c.apiServerAddress ?? (await deps.providers.existing.access(mesh, c)).apiServer;
    return Boolean(server && isLoopbackUrl(server));
  } catch {
    return false;
  }
}
