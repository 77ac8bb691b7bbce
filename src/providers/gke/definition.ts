// GKE clusters: made by meshflow through the GKE API (@google-cloud/container), or the emulator's
// (GKE_EMULATOR_HOST). Two or more on one mesh network share a VPC and get a firewall rule.
import { z } from 'zod';
import type { ProviderDefinition } from '../contract';
import { GKE_CLUSTER_NAME, gkeClusterName } from '../../spec/names';

export const GKE_RELEASE_CHANNELS = ['RAPID', 'REGULAR', 'STABLE', 'EXTENDED'] as const;

export const gkeSettings = z.strictObject({
  project: z
    .string()
    .regex(/^[a-z][-a-z0-9]{4,28}[a-z0-9]$/, 'must be a GCP project ID such as my-project-123')
    .describe('the GCP project the cluster is made in'),
  /** A zone (us-central1-a: a zonal cluster) or a region (us-central1: regional, nodes in each of its zones). */
  location: z
    .string()
    .regex(/^[a-z]+-[a-z]+[0-9]+(-[a-z])?$/, 'must be a GCP region such as us-central1 or a zone such as us-central1-a')
    .describe(
      'a zone (us-central1-a: a zonal cluster) or a region (us-central1: a regional cluster, nodes in each of ' +
        'its zones)',
    ),
  /** The GKE cluster's name (default: "<mesh>-<cluster>"). */
  clusterName: z
    .string()
    .regex(
      GKE_CLUSTER_NAME,
      "must be a GKE cluster name: a lowercase letter, then lowercase letters, digits and '-', at most 40 characters",
    )
    .optional()
    .describe("the GKE cluster's name (default: <mesh>-<cluster>)"),
  /** Nodes per zone of the default node pool. */
  nodeCount: z.number().int().min(1).max(100).default(3).describe('nodes per zone of the default node pool'),
  machineType: z
    .string()
    .regex(/^[a-z0-9]+-[-a-z0-9]+$/, 'must be a machine type such as e2-standard-4')
    .default('e2-standard-4')
    .describe('the machine type of the default node pool'),
  releaseChannel: z
    .enum(GKE_RELEASE_CHANNELS, { error: `must be one of ${GKE_RELEASE_CHANNELS.join(', ')}` })
    .default('REGULAR')
    .describe('the GKE release channel the cluster follows'),
  /** The VPC network (in the project) and, optionally, its subnetwork. */
  network: z.string().min(1).default('default').describe('the VPC network in the project'),
  subnetwork: z.string().min(1).optional().describe("a subnetwork of that VPC (default: GKE's choice)"),
});

/** Its id and summary, apart from the definition (the schema reads them without the definition's types). */
export const gkeNames = { id: 'gke', summary: 'gke' } as const;

export const gkeDefinition = {
  ...gkeNames,
  settings: gkeSettings,
  settingsRequired: true,
  checkCluster(mesh, c, i, issue) {
    if (c.gke && !c.gke.clusterName && !GKE_CLUSTER_NAME.test(gkeClusterName(mesh.name, c))) {
      issue(
        ['clusters', i, 'gke'],
        `the GKE cluster name "${gkeClusterName(mesh.name, c)}" (name-clusters[${i}].name) is not one GKE takes ` +
          `(a lowercase letter first, at most 40 characters): set clusters[${i}].gke.clusterName`,
      );
    }
  },
  // One cluster name per project and location; a mesh network is one VPC.
  checkMesh(mesh, clusters, issue) {
    const seen = new Map<string, number>();
    const vpcOfNetwork = new Map<string, { vpc: string; i: number }>();
    for (const { cluster: c, index: i } of clusters) {
      if (!c.gke) continue;
      const key = `${c.gke.project}/${c.gke.location}/${gkeClusterName(mesh.name, c)}`;
      if (seen.has(key))
        issue(
          ['clusters', i, 'gke'],
          `clusters[${seen.get(key)}] is already GKE cluster ${key}: give one a gke.clusterName of its own`,
        );
      seen.set(key, i);
      const vpc = `${c.gke.project}/${c.gke.network}`;
      const same = vpcOfNetwork.get(c.network);
      if (same && same.vpc !== vpc)
        issue(
          ['clusters', i, 'network'],
          `network "${c.network}" is also clusters[${same.i}]'s, in VPC ${same.vpc}; this cluster is in VPC ${vpc}, ` +
            "whose pods cannot reach the other's: give it a network of its own (east-west gateways then carry the " +
            'traffic)',
        );
      else vpcOfNetwork.set(c.network, { vpc, i });
    }
  },
  createStep: (mesh, c) => ({
    creates:
      `GKE cluster ${gkeClusterName(mesh.name, c)} in ${c.gke!.project}/${c.gke!.location} ` +
      `(${c.gke!.nodeCount} x ${c.gke!.machineType} per zone, ${c.gke!.releaseChannel} channel, VPC ${c.gke!.network})`,
    undo: `delete gke cluster ${c.name}`,
    estimateMs: 360_000,
  }),
  createsCluster: true,
  preflight: (clusters) => `${clusters.join(', ')}: GKE answers for the project and location, the cluster name is free`,
  runsOnHost: false,
  hostBound: () => false,
  networkRules: {
    creates: (clusters, network) =>
      `VPC firewall rule letting the pod ranges of ${clusters.join(', ')} (network ${network}) reach each other`,
    undo: 'delete the firewall rule',
    estimateMs: 15_000,
  },
  istioPlatform: 'gke',
} as const satisfies ProviderDefinition;
