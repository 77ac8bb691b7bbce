// The local provider's runtime: clusters under the state directory (LocalClusters), the
// simulated data plane beside each, istiod as a process of this machine.
import fs from 'node:fs';
import path from 'node:path';
import type { ClusterAccess } from '../../adapters/access';
import { LocalClusters, type LocalTools, istiodEndpoint } from '../../local/clusters';
import { localTools } from '../../local/tools';
import type { IstiodRunner } from '../../local/istiod-runner';
import { startSimulatedDataPlane } from '../../sim/start';
import { localClusterName } from '../../spec/names';
import type { ClusterSpec } from '../../spec/schema';
import { ClusterGoneError } from '../../util/errors';
import type { ClusterProvider, ProviderContext, ProviderEnv } from '../contract';

export const localRuntime = (env: ProviderEnv): LocalProvider => new LocalProvider(env.stateDir, localTools(env.tools));

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
      // Not waiting for the API server's bootstrap objects (a second of nothing on the install's
      // critical path): the steps after this one act as system:masters, and the first that needs
      // them (a link: the reader reviews its own rights) comes seconds later.
      const [local] = await this.clusters.start([name], {
        podCidrs: { [name]: cluster.podCidr },
        untilBootstrapped: false,
      });
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

  async onThisMachine(): Promise<boolean> {
    return true;
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
