// Names meshflow derives from a spec. Pure: validation, providers and the CLI share them.

/** What a local cluster's name must match (the local cluster manager refuses anything else). */
export const LOCAL_CLUSTER_NAME = /^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/;
export const LOCAL_CLUSTER_NAME_MAX = 40;

/** A local cluster carries the mesh's name, so two meshes never share a cluster. */
export function localClusterName(mesh: string, cluster: string): string {
  return `${mesh}-${cluster}`;
}

/** GKE's rule for cluster names: a lowercase letter, then letters, digits and '-', at most 40, not ending in '-'. */
export const GKE_CLUSTER_NAME = /^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$/;

/** The GKE cluster of a spec cluster: its `gke.clusterName`, or "<mesh>-<cluster>". */
export function gkeClusterName(mesh: string, cluster: { name: string; gke?: { clusterName?: string } }): string {
  return cluster.gke?.clusterName ?? `${mesh}-${cluster.name}`;
}
