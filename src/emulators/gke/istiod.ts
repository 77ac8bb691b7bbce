// TEST DOUBLE territory: the GKE emulator's clusters run no pods (kwok plays them), so no istiod
// pod would serve them. As for local clusters, meshflow runs istiod beside each emulated primary
// (pilot-discovery on this machine, against the backing local cluster) and the cluster's webhooks
// point at it. Against real GKE none of this exists: istiod runs as the Deployment Istio installs.
import type { IstiodRunner } from '../../local/istiod-runner';
import { type IstiodEndpoint, LocalClusters, type LocalTools, istiodEndpoint } from '../../local/clusters';
import { gkeClusterName } from '../../spec/names';
import type { ClusterSpec } from '../../spec/schema';
import { type GkeEndpoints, emulatorInfo } from '../../gke/clients';
import { backingName } from './model';

export class EmulatedIstiod implements IstiodRunner {
  private clusters?: Promise<LocalClusters>;

  constructor(
    private readonly endpoints: GkeEndpoints,
    private readonly tools: LocalTools,
  ) {}

  /** The emulator's local clusters (it says where it keeps them). */
  private local(): Promise<LocalClusters> {
    this.clusters ??= emulatorInfo(this.endpoints).then((info) => new LocalClusters(info.stateDir, this.tools));
    return this.clusters;
  }

  private name(mesh: string, c: ClusterSpec): string {
    return backingName(c.gke!.project, c.gke!.location, gkeClusterName(mesh, c));
  }

  async istiodEndpoint(mesh: string, c: ClusterSpec, revision?: string): Promise<IstiodEndpoint> {
    return istiodEndpoint(await (await this.local()).istiodPorts(this.name(mesh, c), revision));
  }

  async stopIstiod(mesh: string, c: ClusterSpec, revision: string | undefined): Promise<void> {
    await (await this.local()).stopIstiod(this.name(mesh, c), revision);
  }

  async serveRevision(mesh: string, c: ClusterSpec, revision: string | undefined): Promise<void> {
    (await this.local()).serveRevision(this.name(mesh, c), revision);
  }

  async startIstiod(mesh: string, c: ClusterSpec, opts: Parameters<IstiodRunner['startIstiod']>[2]) {
    return (await this.local()).startIstiod(this.name(mesh, c), opts);
  }

  async updateCacerts(mesh: string, c: ClusterSpec, cacerts: Record<string, string>) {
    return (await this.local()).updateIstiodCacerts(this.name(mesh, c), cacerts);
  }

  /** The istiod of an emulated cluster, as ClusterAccess reports it. */
  async running(mesh: string, c: ClusterSpec) {
    return (await this.local()).istiod(this.name(mesh, c));
  }
}
