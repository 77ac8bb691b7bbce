// A GKE cluster as CreateCluster accepts it and GetCluster answers it: the submitted Cluster,
// checked as GKE checks it, plus what the server fills in (node pools, versions, ranges, links).
import {
  ApiError,
  CLUSTER_NAME,
  backingName,
  defaultClusterCidr,
  fingerprint,
  isZone,
  parseCidr,
  randomHex,
  type StoredCluster,
} from './model';

/** GKE versions the emulator offers (its clusters run Kubernetes 1.34); the first is the newest. */
export const VERSIONS = ['1.34.4-gke.1000', '1.34.3-gke.1250', '1.33.8-gke.1100', '1.32.12-gke.1300'];
export const DEFAULT_VERSION = VERSIONS[0];
/** Where GKE puts Services by default since 1.27 (a range outside 10.0.0.0/8). */
const DEFAULT_SERVICES_CIDR = '34.118.224.0/20';

const NODE_DEFAULTS = {
  machineType: 'e2-medium',
  diskSizeGb: 100,
  diskType: 'pd-balanced',
  imageType: 'COS_CONTAINERD',
  serviceAccount: 'default',
  oauthScopes: [
    'https://www.googleapis.com/auth/devstorage.read_only',
    'https://www.googleapis.com/auth/logging.write',
  ],
  metadata: { 'disable-legacy-endpoints': 'true' },
};

// Messages as proto-loader gives them: camelCase fields, enums as names, unset fields absent.
type Msg = Record<string, unknown>;

export function serverConfig(): Msg {
  return {
    defaultClusterVersion: DEFAULT_VERSION,
    validMasterVersions: VERSIONS,
    validNodeVersions: VERSIONS,
    defaultImageType: 'COS_CONTAINERD',
    validImageTypes: ['COS_CONTAINERD', 'UBUNTU_CONTAINERD'],
    channels: ['RAPID', 'REGULAR', 'STABLE'].map((channel) => ({
      channel,
      defaultVersion: DEFAULT_VERSION,
      validVersions: VERSIONS,
    })),
  };
}

/** "", "-", "latest", "1.X", "1.X.Y" or an exact "1.X.Y-gke.N", as GKE resolves them. */
function resolveVersion(requested: string | undefined, field: string): string {
  if (!requested || requested === '-') return DEFAULT_VERSION;
  if (requested === 'latest') return VERSIONS[0];
  const found = VERSIONS.find((v) => v === requested || v.startsWith(`${requested}.`) || v.startsWith(`${requested}-`));
  if (!found) {
    throw new ApiError(
      'INVALID_ARGUMENT',
      `Invalid value for field "${field}": "${requested}". ` +
        `Version "${requested}" is unsupported; valid versions: ${VERSIONS.join(', ')}.`,
    );
  }
  return found;
}

export function clusterLink(project: string, location: string, name: string): string {
  return `https://container.googleapis.com/v1/projects/${project}/locations/${location}/clusters/${name}`;
}

const lastSegment = (v: unknown): string => (typeof v === 'string' ? (v.split('/').pop() ?? '') : '');

/** The Cluster a CreateCluster request makes, in PROVISIONING; throws INVALID_ARGUMENT as GKE would. */
export function newCluster(
  project: string,
  location: string,
  input: Msg | undefined,
  takenCidrs: string[],
): StoredCluster {
  if (!input) throw new ApiError('INVALID_ARGUMENT', 'Invalid value for field "cluster": a cluster is required.');
  const name = typeof input.name === 'string' ? input.name : '';
  if (!name) throw new ApiError('INVALID_ARGUMENT', 'Invalid value for field "cluster.name": a name is required.');
  if (!CLUSTER_NAME.test(name)) {
    throw new ApiError(
      'INVALID_ARGUMENT',
      `Invalid value for field "cluster.name": "${name}". ` +
        `Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?)' (only alphanumerics and '-' allowed, ` +
        `must start with a letter and end with an alphanumeric, and must be no longer than 40 characters).`,
    );
  }
  const link = clusterLink(project, location, name);
  const version = resolveVersion(input.initialClusterVersion as string | undefined, 'cluster.initial_cluster_version');
  const locations = (input.locations as string[] | undefined)?.length
    ? (input.locations as string[])
    : isZone(location)
      ? [location]
      : ['a', 'b', 'c'].map((z) => `${location}-${z}`);
  const pools = nodePools(input, version, locations, link);
  const nodeCount = pools.reduce(
    (n, p) => n + Number(p.initialNodeCount ?? 0) * ((p.locations as string[] | undefined)?.length || 1),
    0,
  );

  const ipPolicy = (input.ipAllocationPolicy ?? {}) as Msg;
  const clusterIpv4Cidr = podRange(
    (input.clusterIpv4Cidr || ipPolicy.clusterIpv4CidrBlock || ipPolicy.clusterIpv4Cidr || '') as string,
    takenCidrs,
  );
  const servicesIpv4Cidr = servicesRange((ipPolicy.servicesIpv4CidrBlock || ipPolicy.servicesIpv4Cidr || '') as string);
  const network = lastSegment(input.network) || 'default';
  const subnetwork = lastSegment(input.subnetwork) || network;
  const region = isZone(location) ? location.replace(/-[a-z]$/, '') : location;
  const labels = (input.resourceLabels ?? {}) as Record<string, string>;
  const cluster: Msg = {
    ...input,
    name,
    location,
    zone: location,
    locations,
    selfLink: link,
    id: randomHex(16),
    status: 'PROVISIONING',
    createTime: new Date().toISOString(),
    network,
    subnetwork,
    networkConfig: {
      ...(input.networkConfig as Msg | undefined),
      network: `projects/${project}/global/networks/${network}`,
      subnetwork: `projects/${project}/regions/${region}/subnetworks/${subnetwork}`,
    },
    clusterIpv4Cidr,
    servicesIpv4Cidr,
    ipAllocationPolicy: {
      ...ipPolicy,
      clusterIpv4Cidr,
      clusterIpv4CidrBlock: clusterIpv4Cidr,
      servicesIpv4Cidr,
      servicesIpv4CidrBlock: servicesIpv4Cidr,
    },
    nodePools: pools,
    nodeConfig: pools[0]?.config,
    initialClusterVersion: version,
    currentMasterVersion: version,
    currentNodeVersion: version,
    currentNodeCount: nodeCount,
    releaseChannel: (input.releaseChannel as Msg | undefined)?.channel ? input.releaseChannel : { channel: 'REGULAR' },
    resourceLabels: labels,
    labelFingerprint: fingerprint(labels).slice(0, 8),
    loggingService: input.loggingService || 'logging.googleapis.com/kubernetes',
    monitoringService: input.monitoringService || 'monitoring.googleapis.com/kubernetes',
    masterAuth: { ...(input.masterAuth as Msg | undefined) },
    etag: randomHex(8),
  };
  return {
    project,
    location,
    name,
    localName: backingName(project, location, name),
    cluster: cluster as StoredCluster['cluster'],
  };
}

function nodePools(input: Msg, version: string, locations: string[], link: string): Msg[] {
  const given = (input.nodePools ?? []) as Msg[];
  if ((input.autopilot as Msg | undefined)?.enabled) return [];
  let pools: Msg[];
  if (given.length) {
    if (input.initialNodeCount || input.nodeConfig) {
      throw new ApiError(
        'INVALID_ARGUMENT',
        'Cluster.initial_node_count and Cluster.node_config may not be set together with Cluster.node_pools.',
      );
    }
    const seen = new Set<string>();
    pools = given.map((p, i) => {
      const name = typeof p.name === 'string' ? p.name : '';
      if (!/^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$/.test(name)) {
        throw new ApiError('INVALID_ARGUMENT', `Invalid value for field "cluster.node_pools[${i}].name": "${name}".`);
      }
      if (seen.has(name)) throw new ApiError('INVALID_ARGUMENT', `Node pool "${name}" is given twice.`);
      seen.add(name);
      if (Number(p.initialNodeCount ?? 0) < 1 && !(p.autoscaling as Msg | undefined)?.enabled) {
        throw new ApiError(
          'INVALID_ARGUMENT',
          `Cluster.node_pools[${i}].initial_node_count must be greater than zero.`,
        );
      }
      return p;
    });
  } else {
    if (Number(input.initialNodeCount ?? 0) < 1) {
      throw new ApiError('INVALID_ARGUMENT', 'Cluster.initial_node_count must be greater than zero.');
    }
    pools = [{ name: 'default-pool', config: input.nodeConfig, initialNodeCount: input.initialNodeCount }];
  }
  return pools.map((p) => ({
    ...p,
    config: { ...NODE_DEFAULTS, ...(p.config as Msg | undefined) },
    locations: (p.locations as string[] | undefined)?.length ? p.locations : locations,
    version: p.version ? resolveVersion(p.version as string, 'cluster.node_pools.version') : version,
    selfLink: `${link}/nodePools/${p.name as string}`,
    status: 'PROVISIONING',
    podIpv4CidrSize: 24,
    management: { autoUpgrade: true, autoRepair: true, ...(p.management as Msg | undefined) },
    upgradeSettings: { maxSurge: 1, maxUnavailable: 0, ...(p.upgradeSettings as Msg | undefined) },
    etag: randomHex(8),
  }));
}

function podRange(requested: string, taken: string[]): string {
  const field = 'cluster.ip_allocation_policy.cluster_ipv4_cidr_block';
  const size = /^\/(\d{1,2})$/.exec(requested);
  if (!requested || size) {
    const prefix = size ? Number(size[1]) : 14;
    if (prefix < 14 || prefix > 28) {
      throw new ApiError(
        'INVALID_ARGUMENT',
        `Invalid value for field "${field}": "${requested}". ` +
          'The emulator picks ranges from /14 to /28; give a wider range itself.',
      );
    }
    const cidr = defaultClusterCidr(taken, prefix);
    if (!cidr) throw new ApiError('RESOURCE_EXHAUSTED', 'No free /14 pod range left in 10.0.0.0/8.');
    return cidr;
  }
  if (!parseCidr(requested)) {
    throw new ApiError(
      'INVALID_ARGUMENT',
      `Invalid value for field "${field}": "${requested}". Must be an IPv4 CIDR block such as 10.4.0.0/14.`,
    );
  }
  return requested;
}

function servicesRange(requested: string): string {
  if (!requested || requested.startsWith('/')) return DEFAULT_SERVICES_CIDR;
  if (!parseCidr(requested)) {
    throw new ApiError(
      'INVALID_ARGUMENT',
      `Invalid value for field "cluster.ip_allocation_policy.services_ipv4_cidr_block": "${requested}". ` +
        'Must be an IPv4 CIDR block.',
    );
  }
  return requested;
}

/** Moves the cluster and its node pools to `status`; an error's message goes where GKE shows it. */
export function setClusterStatus(c: StoredCluster, status: string, error?: string): void {
  c.cluster.status = status;
  for (const p of (c.cluster.nodePools ?? []) as Msg[]) p.status = status;
  if (error) {
    c.cluster.statusMessage = error;
    c.cluster.conditions = [{ code: 'UNKNOWN', message: error, canonicalCode: 'INTERNAL' }];
  } else {
    delete c.cluster.statusMessage;
    delete c.cluster.conditions;
  }
}
