// The existing provider's runtime: a kubeconfig context, from the trust store (as up copied it)
// or the file on this host; a preflight before anything changes; never a delete.
import fs from 'node:fs';
import os from 'node:os';
import * as k8s from '@kubernetes/client-node';
import type { ClusterAccess } from '../../adapters/access';
import { preflightCluster } from '../../adapters/preflight';
import { kubeFor } from '../../adapters/providers';
import type { ClusterSpec } from '../../spec/schema';
import type { TrustStore } from '../../trust-store/store';
import { PermanentError } from '../../util/errors';
import { isLoopbackUrl } from '../../util/net';
import type { ClusterProvider, PreflightContext, ProviderEnv } from '../contract';

export const existingRuntime = (env: ProviderEnv): ExistingProvider => new ExistingProvider(env.trustStore);

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
        `cannot reach cluster ${cluster.name} through ${access.kubeconfig}` +
          `${access.context ? ` (context ${access.context})` : ''}: ${(err as Error).message}`,
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

  /** Whether its API server (the spec's address, or its kubeconfig's) is a loopback one. */
  async onThisMachine(mesh: string, cluster: ClusterSpec): Promise<boolean> {
    try {
      const server = cluster.apiServerAddress ?? (await this.access(mesh, cluster)).apiServer;
      return Boolean(server && isLoopbackUrl(server));
    } catch {
      return false;
    }
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
