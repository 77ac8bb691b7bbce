// What marks a GKE cluster or firewall rule as a mesh's: its labels, the rule's name and description.
import { createHash } from 'node:crypto';

/** Resource labels on every GKE cluster meshflow creates (GCP labels: lowercase, no dots or slashes). */
export const GKE_MANAGED_BY = 'managed-by';
export const GKE_MESH_LABEL = 'meshflow-mesh';
export const GKE_CLUSTER_LABEL = 'meshflow-cluster';

/** The rule of a mesh network: "meshflow-<mesh>-<network>", or a hash when that is over 63 characters. */
export function firewallName(mesh: string, network: string): string {
  const name = `meshflow-${mesh}-${network}`;
  return name.length <= 63
    ? name
    : `meshflow-${createHash('sha256').update(`${mesh}/${network}`).digest('hex').slice(0, 20)}`;
}

export function ruleDescription(mesh: string, network: string): string {
  return `meshflow mesh ${mesh} network ${network}: pods of its GKE clusters reach each other`;
}

/** The mesh and network a rule's description names, when meshflow wrote it. */
export function ruleOwner(description: string): { mesh: string; network: string } | undefined {
  const m = /^meshflow mesh ([a-z0-9-]+) network ([a-z0-9-]+): pods of its GKE clusters reach each other$/.exec(
    description,
  );
  return m ? { mesh: m[1], network: m[2] } : undefined;
}
