// The sample apps a mesh can run, as our own manifests with public, pinned images, placed per
// cluster, with the traffic checks that show the mesh carries their calls. Each app is in
// ./apps/<name>.ts; this module is the one entry the rest of meshflow imports.
import { callerCalleeApp } from './apps/caller-callee';
import type { SampleApp, SampleName } from './apps/common';
import { echoApp } from './apps/echo';
import { SAMPLE_NAMESPACE, helloworldApp } from './apps/helloworld';
import { onlineBoutiqueApp } from './apps/online-boutique';

export type { IngressProbe, SampleApp, SampleName, TrafficProbe } from './apps/common';
export { SAMPLE_NAMESPACE };

export const SAMPLE_APPS: Record<SampleName, SampleApp> = {
  helloworld: helloworldApp,
  echo: echoApp,
  'online-boutique': onlineBoutiqueApp,
  'caller-callee': callerCalleeApp,
};

/** The Deployments among the objects: what to wait for after applying them. */
export function deploymentNames(objects: object[]): Array<{ namespace: string; name: string }> {
  return (objects as Array<{ kind: string; metadata: { name: string; namespace: string } }>)
    .filter((o) => o.kind === 'Deployment')
    .map((o) => ({ namespace: o.metadata.namespace, name: o.metadata.name }));
}
