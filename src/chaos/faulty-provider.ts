// TEST DOUBLE around the real LocalProvider, for the chaos harness: the same local clusters,
// created and deleted by the real provider, but every Kubernetes call of the activities (and the
// remote secrets' readers) goes through a FaultProxy in front of each cluster's API server. It runs
// istiod beside each primary as the real provider does: without it the control plane would be
// istioctl's in-cluster istiod, whose injection webhook a local API server cannot call, and no
// pod of an injected namespace would ever be created.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { ClusterAccess, IstiodRunner } from '../adapters/providers';
import type { ClusterProvider, ProviderContext } from '../providers/contract';
import type { LocalProvider } from '../providers/local/runtime';
import type { LocalClusters } from '../local/clusters';
import type { ClusterSpec } from '../spec/schema';
import { localClusterName } from '../spec/names';
import { type Fault, FaultProxy } from './fault-proxy';

export class FaultyLocalProvider implements ClusterProvider {
  readonly proxies = new Map<string, FaultProxy>();
  /** Faults injected by the proxies of clusters already deleted. */
  private injectedBefore = 0;
  readonly istiodRunner?: IstiodRunner;

  constructor(
    private readonly real: LocalProvider,
    private readonly clusters: LocalClusters,
    private readonly faults: () => Fault[],
  ) {
    this.istiodRunner = real.istiodRunner;
  }

  async create(mesh: string, cluster: ClusterSpec, ctx: ProviderContext): Promise<void> {
    await this.real.create(mesh, cluster, ctx);
    const name = localClusterName(mesh, cluster.name);
    if (this.proxies.has(name)) return;
    const proxy = await new FaultProxy(this.clusters.get(name)!).start();
    proxy.faults = this.faults();
    this.proxies.set(name, proxy);
  }

  async delete(mesh: string, cluster: ClusterSpec): Promise<void> {
    const name = localClusterName(mesh, cluster.name);
    const proxy = this.proxies.get(name);
    if (proxy) {
      this.injectedBefore += proxy.injected.length;
      await proxy.stop();
      this.proxies.delete(name);
    }
    await this.real.delete(mesh, cluster);
  }

  async access(mesh: string, cluster: ClusterSpec): Promise<ClusterAccess> {
    const real = await this.real.access(mesh, cluster);
    const proxy = this.proxies.get(localClusterName(mesh, cluster.name));
    if (!proxy) return real;
    const file = path.join(path.dirname(real.kubeconfig), 'kubeconfig-through-faults');
    if (!fs.existsSync(file)) {
      const doc = YAML.parse(fs.readFileSync(real.kubeconfig, 'utf8')) as {
        clusters: Array<{ cluster: { server: string } }>;
      };
      for (const c of doc.clusters) c.cluster.server = proxy.url;
      fs.writeFileSync(file, YAML.stringify(doc), { mode: 0o600 });
    }
    return { ...real, kubeconfig: file, apiServer: proxy.url };
  }

  /** Stops every proxy still open (their clusters outlived the runs): an open proxy keeps the process alive. */
  async stop(): Promise<void> {
    for (const [name, proxy] of this.proxies) {
      this.injectedBefore += proxy.injected.length;
      await proxy.stop();
      this.proxies.delete(name);
    }
  }

  /** How many faults the proxies injected so far. */
  injected(): number {
    return [...this.proxies.values()].reduce((n, p) => n + p.injected.length, this.injectedBefore);
  }
}
