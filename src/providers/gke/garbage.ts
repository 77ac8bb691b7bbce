// What gc finds in GKE: meshflow's clusters (by their resource labels) and firewall rules in a project.
import type { GkeClients } from '../../gke/clients';
import type { ClusterSpec } from '../../spec/schema';
import type { ProviderContext, ProviderGarbage } from '../contract';
import { GKE_CLUSTER_LABEL, GKE_MANAGED_BY, GKE_MESH_LABEL, ruleOwner } from './names';

/** What the search needs of the GKE provider: its clients, and how it deletes a cluster and a rule. */
export interface GkeGarbageSource {
  readonly clients: GkeClients;
  delete(mesh: string, c: ClusterSpec, ctx: ProviderContext): Promise<void>;
  deleteFirewall(mesh: string, network: string, project: string, ctx: ProviderContext): Promise<void>;
}

/** meshflow's GKE clusters (by their resource labels) and firewall rules (by name and description) in a project. */
export async function scanGke(gke: GkeGarbageSource, project: string): Promise<ProviderGarbage[]> {
  const found: ProviderGarbage[] = [];
  const [list] = await gke.clients.clusters.listClusters({ parent: `projects/${project}/locations/-` });
  for (const c of list.clusters ?? []) {
    const labels = c.resourceLabels ?? {};
    if (labels[GKE_MANAGED_BY] !== 'meshflow' || !labels[GKE_MESH_LABEL]) continue;
    const mesh = labels[GKE_MESH_LABEL];
    const cluster: ClusterSpec = {
      name: labels[GKE_CLUSTER_LABEL] ?? c.name!,
      provider: 'gke',
      network: 'gc',
      role: 'primary',
      gke: {
        project,
        location: c.location!,
        clusterName: c.name!,
        nodeCount: 1,
        machineType: 'e2-standard-4',
        releaseChannel: 'REGULAR',
        network: 'default',
      },
    };
    found.push({
      kind: 'gke-cluster',
      stage: 'clusters',
      where: `projects/${project}/locations/${c.location}`,
      mesh,
      what: c.name!,
      reason: `labelled ${GKE_MESH_LABEL}=${mesh}, status ${c.status}`,
      remove: async () => {
        await gke.delete(mesh, cluster, { heartbeat: () => undefined });
        return undefined;
      },
    });
  }
  const [rules] = await gke.clients.firewalls.list({ project, filter: 'name = "meshflow-*"' });
  for (const r of rules ?? []) {
    const owner = ruleOwner(r.description ?? '');
    if (!owner || !r.name?.startsWith('meshflow-')) continue;
    found.push({
      kind: 'firewall-rule',
      stage: 'network-rules',
      where: `projects/${project}/global/firewalls`,
      mesh: owner.mesh,
      what: r.name,
      reason: `network ${owner.network}: ${(r.sourceRanges ?? []).join(', ')}`,
      remove: async () => {
        await gke.deleteFirewall(owner.mesh, owner.network, project, { heartbeat: () => undefined });
        return undefined;
      },
    });
  }
  return found;
}
