// Existing clusters: a kubeconfig context of a cluster the user runs. meshflow connects to it,
// checks it first (preflight) and never deletes it; what it put in it is undone object by object.
import { z } from 'zod';
import type { ProviderDefinition } from '../contract';
import { STORED_NOT_YOURS, stored } from '../../spec/stored';

export const existingSettings = z
  .strictObject({
    kubeconfig: z.string().min(1).describe('path of the kubeconfig file'),
    context: z.string().min(1).optional().describe('context in that file (default: its current context)'),
    stored,
  })
  .describe('provider existing: the kubeconfig context of a cluster you run');

/** Its id and summary, apart from the definition (the schema reads them without the definition's types). */
export const existingNames = { id: 'existing', summary: 'existing (a kubeconfig context)' } as const;

export const existingDefinition = {
  ...existingNames,
  settings: existingSettings,
  settingsRequired: true,
  checkCluster(_mesh, c, i, issue) {
    if (c.existing?.stored !== undefined) issue(['clusters', i, 'existing', 'stored'], STORED_NOT_YOURS);
  },
  createStep: (_mesh, c) => ({ creates: `connection to existing cluster ${c.name}`, estimateMs: 1_000 }),
  createsCluster: false,
  preflight: (clusters) =>
    `${clusters.join(', ')}: reachable, Kubernetes version, permissions, no Istio that is not this mesh's, ` +
    'API address reachable from the other clusters',
  runsOnHost: false,
  // Its kubeconfig is a file of one machine unless up copied it into the trust store.
  hostBound: (c) => c.existing?.stored === undefined,
} as const satisfies ProviderDefinition;
