// Where clusters come from. One interface, one implementation per provider; activities see only
// the interface, and tests may bring their own implementation.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import {
  type IstiodEndpoint,
  type IstiodOptions,
  LocalClusters,
  type LocalTools,
  istiodEndpoint,
} from '../local/clusters';
import { localClusterName } from '../spec/names';
import type { ClusterSpec } from '../spec/schema';
import { packageRoot } from '../paths';
import { runningPid, startDaemon } from '../util/daemon';
import { type Heartbeat, Kube } from './kube';
import { PermanentError } from '../steps/errors';

export { PermanentError } from '../steps/errors';

export interface ClusterAccess {
  kubeconfig: string;
  context?: string;
  /** The API server address other clusters use (remote secrets point here). */
  apiServer: string;
  /** Base64 PEM of the CA that signs the API server's certificate. */
  caData: string;
  /** A cluster on this machine: its API address is reachable from the other local clusters only. */
  local: boolean;
  /** An istiod meshflow runs on this machine for the cluster (local primaries), while it runs. */
  istiod?: IstiodEndpoint & { running: boolean; log: string };
}

/** A provider that runs istiod itself, beside the cluster (local clusters): no in-cluster istiod serves it. */
export interface IstiodRunner {
  /** Where the cluster's istiod answers once started; the ports are chosen now and kept. */
  istiodEndpoint(mesh: string, cluster: ClusterSpec): Promise<IstiodEndpoint>;
  startIstiod(mesh: string, cluster: ClusterSpec, opts: IstiodOptions): Promise<IstiodEndpoint>;
}

export interface ClusterProvider {
  create(mesh: string, cluster: ClusterSpec, heartbeat: Heartbeat): Promise<void>;
  delete(mesh: string, cluster: ClusterSpec, heartbeat: Heartbeat): Promise<void>;
  access(mesh: string, cluster: ClusterSpec): ClusterAccess;
  istiodRunner?: IstiodRunner;
}

export function kubeFor(access: ClusterAccess, signal?: AbortSignal): Kube {
  return Kube.fromFile(access.kubeconfig, access.context, signal);
}

/** Local control-plane-only clusters (with the simulated data plane beside each). */
export class LocalProvider implements ClusterProvider {
  private readonly clusters: LocalClusters;
  readonly istiodRunner?: IstiodRunner;

  constructor(stateDir: string, tools: LocalTools) {
    this.clusters = new LocalClusters(stateDir, tools);
    if (tools.pilotDiscovery) {
      this.istiodRunner = {
        istiodEndpoint: async (mesh, cluster) =>
          istiodEndpoint(await this.clusters.istiodPorts(this.localName(mesh, cluster))),
        startIstiod: (mesh, cluster, opts) => this.clusters.startIstiod(this.localName(mesh, cluster), opts),
      };
    }
  }

  /** Local cluster names carry the mesh name, so two meshes never share a cluster. */
  private localName(mesh: string, cluster: ClusterSpec): string {
    return localClusterName(mesh, cluster.name);
  }

  async create(mesh: string, cluster: ClusterSpec, heartbeat: Heartbeat): Promise<void> {
    const name = this.localName(mesh, cluster);
    const beat = setInterval(() => heartbeat({ starting: name }), 5000);
    try {
      const [local] = await this.clusters.start([name], { podCidrs: { [name]: cluster.podCidr } });
      const dir = path.dirname(local.kubeconfig);
      // "<mesh>-<cluster>" splits more than one way when names hold '-': say whose cluster this is (read by gc).
      const owner = path.join(dir, 'owner.json');
      if (!fs.existsSync(owner)) fs.writeFileSync(owner, JSON.stringify({ mesh, cluster: cluster.name }) + '\n');
      const pidFile = path.join(dir, 'simulated-data-plane.pid');
      if (runningPid(pidFile, dir) === undefined) {
        startDaemon({
          file: process.execPath,
          args: [path.join(packageRoot, 'dist', 'sim', 'daemon.js'), local.name, String(local.index), local.kubeconfig],
          pidFile,
          marker: dir,
        });
      }
    } finally {
      clearInterval(beat);
    }
  }

  async delete(mesh: string, cluster: ClusterSpec): Promise<void> {
    // Every process of the cluster stops (istiod included); also when it never finished
    // starting, its directory and etcd keys go all the same.
    await this.clusters.delete([this.localName(mesh, cluster)]);
  }

  access(mesh: string, cluster: ClusterSpec): ClusterAccess {
    const local = this.clusters.get(this.localName(mesh, cluster));
    if (!local) throw new PermanentError(`local cluster ${cluster.name} of mesh ${mesh} does not exist`);
    return {
      kubeconfig: local.kubeconfig,
      apiServer: cluster.apiServerAddress ?? local.server,
      caData: fs.readFileSync(local.pki.caCert).toString('base64'),
      local: true,
      istiod: this.clusters.istiod(local.name),
    };
  }
}

/** Clusters the user already runs, from a kubeconfig context. meshflow never deletes them. */
export class ExistingProvider implements ClusterProvider {
  async create(mesh: string, cluster: ClusterSpec): Promise<void> {
    // Connecting is the whole of "creating": prove the context works before going on.
    const access = this.access(mesh, cluster);
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

  access(_mesh: string, cluster: ClusterSpec): ClusterAccess {
    const file = cluster.existing!.kubeconfig.replace(/^~(?=\/)/, os.homedir());
    if (!fs.existsSync(file))
      throw new PermanentError(`clusters[${cluster.name}].existing.kubeconfig: ${file} does not exist`);
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(file);
    const contextName = cluster.existing!.context ?? kc.getCurrentContext();
    const context = kc.getContextObject(contextName);
    if (!context)
      throw new PermanentError(`clusters[${cluster.name}].existing.context: no context "${contextName}" in ${file}`);
    const kcCluster = kc.getCluster(context.cluster);
    const caData = kcCluster?.caData ?? (kcCluster?.caFile ? fs.readFileSync(kcCluster.caFile).toString('base64') : '');
    return {
      kubeconfig: file,
      context: contextName,
      apiServer: cluster.apiServerAddress ?? kcCluster!.server,
      caData,
      local: false,
    };
  }
}

/** GKE clusters are declared in the spec but not provisioned by this build. */
export class UnavailableProvider implements ClusterProvider {
  constructor(private readonly provider: string) {}
  private fail(): never {
    throw new PermanentError(`provider "${this.provider}" is not available in this build of meshflow`);
  }
  async create(): Promise<void> {
    this.fail();
  }
  async delete(): Promise<void> {
    this.fail();
  }
  access(): ClusterAccess {
    this.fail();
  }
}
