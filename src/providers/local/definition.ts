// Local clusters: a control-plane-only cluster on the worker's machine (kube-apiserver, etcd,
// controllers, kwok nodes), with istiod as a process beside it. The embedded default.
import { z } from 'zod';
import type { ProviderDefinition } from '../contract';
import { LOCAL_CLUSTER_NAME_MAX, localClusterName } from '../../spec/names';

export const localSettings = z.strictObject({}).describe('a control-plane-only cluster on this machine');

/** Its id and summary, apart from the definition (the schema reads them without the definition's types). */
export const localNames = { id: 'local', summary: 'local (on this machine)' } as const;

export const localDefinition = {
  ...localNames,
  settings: localSettings,
  settingsRequired: false,
  checkCluster(mesh, c, i, issue) {
    const local = localClusterName(mesh.name, c.name);
    if (local.length > LOCAL_CLUSTER_NAME_MAX) {
      issue(
        ['clusters', i, 'name'],
        `local cluster name "${local}" (name-clusters[${i}].name) is ${local.length} characters, over the limit ` +
          `of ${LOCAL_CLUSTER_NAME_MAX}: shorten name or clusters[${i}].name`,
      );
    }
  },
  createStep: (_mesh, c) => ({
    creates: `local cluster ${c.name}`,
    undo: `delete local cluster ${c.name}`,
    estimateMs: 8_000,
  }),
  createsCluster: true,
  runsOnHost: true,
  hostBound: () => true,
} as const satisfies ProviderDefinition;
