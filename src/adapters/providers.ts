// Where clusters come from. One interface, one implementation per provider; activities see only
// the interface, and tests may bring their own implementation.
import fs from 'node:fs';
import { isLoopbackUrl } from '../util/net';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { SharedTlsKubeConfig } from '../util/kube-config';
import { LocalClusters, type LocalTools, istiodEndpoint } from '../local/clusters';
import { localClusterName } from '../spec/names';
import type { ClusterSpec } from '../spec/schema';
import { startSimulatedDataPlane } from '../sim/start';
import { type Heartbeat, Kube } from './kube';
import { ClusterGoneError, PermanentError } from '../util/errors';
import type { TrustStore } from '../trust-store/store';
import type { ClusterAccess } from './access';
import type { IstiodRunner } from '../local/istiod-runner';
import { preflightCluster } from './preflight';

export { PermanentError } from '../util/errors';

export type { ClusterAccess } from './access';

export type { IstiodRunner } from '../local/istiod-runner';

/** What a provider's create or delete is given by the step that runs it. */
export interface ProviderContext {
  /** Reports progress; it is kept with the step, and the next attempt gets it back as `previous`. */
  heartbeat: Heartbeat;
  /** The last progress an earlier attempt of this step reported (e.g. the cloud operation it started). */
  previous?: unknown;
  signal?: AbortSignal;
}

export interface ClusterProvider {
  create(mesh: string, cluster: ClusterSpec, ctx: ProviderContext): Promise<void>;
  delete(mesh: string, cluster: ClusterSpec, ctx: ProviderContext): Promise<void>;
  /** How to reach the cluster; a cluster it made that does not exist (any more) is a ClusterGoneError. */
  access(mesh: string, cluster: ClusterSpec): Promise<ClusterAccess>;
  /**
   * Checks, before anything changes, that the cluster can join the mesh (reachable, supported,
   * permitted, not someone else's); each problem says what to fix. Undefined: nothing to check.
   */
  preflight?(mesh: string, cluster: ClusterSpec, ctx: PreflightContext): Promise<string[]>;
  istiodRunner?: IstiodRunner;
}

export interface PreflightContext {
  signal?: AbortSignal;
  /** Whether every cluster of the mesh is on this machine (a loopback API address is then fine). */
  allLocal: boolean;
}

export function kubeFor(access: ClusterAccess, signal?: AbortSignal): Kube {
  if (!access.token && access.config === undefined) return Kube.fromFile(access.kubeconfig, access.context, signal);
  const kc = new SharedTlsKubeConfig();
  if (access.config !== undefined) kc.loadFromString(access.config);
  else kc.loadFromFile(access.kubeconfig);
  if (access.context) kc.setCurrentContext(access.context);
  if (!access.token) return new Kube(kc, signal);
  const user = kc.getCurrentUser();
  // The token only: not also the exec plugin the file names for other programs (gke-gcloud-auth-plugin).
  kc.users = kc.users.map((u) => (u.name === user?.name ? { name: u.name, token: access.token } : u));
  return new Kube(kc, signal);
}

/**
 * Runs `fn` with a kubeconfig file a separate program (istioctl) can use. When the access carries
 * its token (GKE) or its whole kubeconfig (from the trust store) in memory, that is a copy,
 * readable by this user only, in a private temporary directory, and removed when `fn` is done.
 */
export async function withKubeconfigFile<T>(access: ClusterAccess, fn: (file: string) => Promise<T>): Promise<T> {
  if (!access.token && access.config === undefined) return fn(access.kubeconfig);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-kubeconfig-'));
  try {
    const kc = kubeFor(access).config;
    const file = path.join(dir, 'kubeconfig');
    fs.writeFileSync(file, kc.exportConfig(), { mode: 0o600 });
    return await fn(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Local control-plane-only clusters (with the simulated data plane beside each). */
export class LocalProvider implements ClusterProvider {
  private readonly clusters: LocalClusters;
  readonly istiodRunner?: IstiodRunner;

  constructor(stateDir: string, tools: LocalTools) {
    this.clusters = new LocalClusters(stateDir, tools);
    if (tools.pilotDiscovery) {
      this.istiodRunner = {
        istiodEndpoint: async (mesh, cluster, revision) =>
          istiodEndpoint(await this.clusters.istiodPorts(this.localName(mesh, cluster), revision)),
        startIstiod: (mesh, cluster, opts) => this.clusters.startIstiod(this.localName(mesh, cluster), opts),
        stopIstiod: (mesh, cluster, revision) => this.clusters.stopIstiod(this.localName(mesh, cluster), revision),
        serveRevision: async (mesh, cluster, revision) =>
          this.clusters.serveRevision(this.localName(mesh, cluster), revision),
        updateCacerts: (mesh, cluster, cacerts) =>
          this.clusters.updateIstiodCacerts(this.localName(mesh, cluster), cacerts),
      };
    }
  }

  /** Local cluster names carry the mesh name, so two meshes never share a cluster. */
  private localName(mesh: string, cluster: ClusterSpec): string {
    return localClusterName(mesh, cluster.name);
  }

  async create(mesh: string, cluster: ClusterSpec, { heartbeat }: ProviderContext): Promise<void> {
    const name = this.localName(mesh, cluster);
    const beat = setInterval(() => heartbeat({ starting: name }), 5000);
    try {
      const [local] = await this.clusters.start([name], { podCidrs: { [name]: cluster.podCidr } });
      const dir = path.dirname(local.kubeconfig);
      // "<mesh>-<cluster>" splits more than one way when names hold '-': say whose cluster this is (read by gc).
      const owner = path.join(dir, 'owner.json');
      if (!fs.existsSync(owner)) fs.writeFileSync(owner, JSON.stringify({ mesh, cluster: cluster.name }) + '\n');
      startSimulatedDataPlane(local);
    } finally {
      clearInterval(beat);
    }
  }

  async delete(mesh: string, cluster: ClusterSpec): Promise<void> {
    // Every process of the cluster stops (istiod included); also when it never finished
    // starting, its directory and etcd keys go all the same.
    await this.clusters.delete([this.localName(mesh, cluster)]);
  }

  async access(mesh: string, cluster: ClusterSpec): Promise<ClusterAccess> {
    const local = this.clusters.get(this.localName(mesh, cluster));
    if (!local) throw new ClusterGoneError(`local cluster ${cluster.name} of mesh ${mesh} does not exist`);
    return {
      kubeconfig: local.kubeconfig,
      apiServer: cluster.apiServerAddress ?? local.server,
      caData: fs.readFileSync(local.pki.caCert).toString('base64'),
      local: true,
      istiod: this.clusters.istiod(local.name),
    };
  }
}

/**
 * Clusters the user already runs, from a kubeconfig context: the copy `up` put in the mesh's trust
 * store, or (meshes started before that, or with a store of one host's disk) the file on this host.
 * meshflow never deletes them.
 */
export class ExistingProvider implements ClusterProvider {
  constructor(private readonly store?: TrustStore) {}

  async create(mesh: string, cluster: ClusterSpec): Promise<void> {
    // Connecting is the whole of "creating": prove the context works before going on.
    const access = await this.access(mesh, cluster);
    try {
      await kubeFor(access).core.listNamespace({ limit: 1 });
    } catch (err) {
      throw new Error(
        `cannot reach cluster ${cluster.name} through ${access.kubeconfig}${access.context ? ` (context ${access.context})` : ''}: ${(err as Error).message}`,
      );
    }
  }

  async delete(): Promise<void> {
    // Existing clusters are not ours to delete; the objects meshflow put in them are undone one by one.
  }

  async preflight(mesh: string, cluster: ClusterSpec, ctx: PreflightContext): Promise<string[]> {
    let access: ClusterAccess;
    try {
      access = await this.access(mesh, cluster);
    } catch (err) {
      return [(err as Error).message];
    }
    return preflightCluster(mesh, cluster.name, access, kubeFor(access, ctx.signal).config, ctx.allLocal);
  }

  async access(mesh: string, cluster: ClusterSpec): Promise<ClusterAccess> {
    const file = cluster.existing!.kubeconfig.replace(/^~(?=\/)/, os.homedir());
    const kc = new k8s.KubeConfig();
    const stored = cluster.existing!.stored;
    let config: string | undefined;
    if (stored !== undefined) {
      config = await this.store?.get(mesh, stored);
      if (config === undefined) {
        throw new PermanentError(
          `clusters[${cluster.name}].existing.kubeconfig: ${file} as up copied it is not in this worker's ` +
            `trust store (entry ${stored}${this.store ? ` in the ${this.store.where}` : ''}): give every worker the ` +
            'MESHFLOW_TRUST_STORE the mesh was started with',
        );
      }
      kc.loadFromString(config);
    } else {
      if (!fs.existsSync(file))
        throw new PermanentError(`clusters[${cluster.name}].existing.kubeconfig: ${file} does not exist`);
      kc.loadFromFile(file);
    }
    const contextName = cluster.existing!.context ?? kc.getCurrentContext();
    const context = kc.getContextObject(contextName);
    if (!context)
      throw new PermanentError(`clusters[${cluster.name}].existing.context: no context "${contextName}" in ${file}`);
    const kcCluster = kc.getCluster(context.cluster);
    const caData = kcCluster?.caData ?? (kcCluster?.caFile ? fs.readFileSync(kcCluster.caFile).toString('base64') : '');
    const apiServer = cluster.apiServerAddress ?? kcCluster!.server;
    return {
      kubeconfig: file,
      ...(config !== undefined ? { config } : {}),
      context: contextName,
      apiServer,
      caData,
      // A loopback API server is on this machine (as local clusters are): only clusters here reach it.
      local: isLoopbackUrl(apiServer),
    };
  }
}
