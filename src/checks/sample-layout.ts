// What the sample app looks like from the spec (its injected namespaces, Services and the clusters
// serving them) and which clusters each primary's istiod must read: what the Istio checks compare
// istiod's answers with. Pure: computed once per verification (CheckContext.layout).
import { SAMPLE_APPS } from '../istio/sample-apps';
import { appPlacement, linkPairs } from '../plan/plan';
import type { MeshSpec } from '../spec/schema';

/** The clusters whose services and endpoints a primary's istiod must read: its own, its remotes', its peers'. */
export function clustersReadBy(spec: MeshSpec, primary: string): string[] {
  const read = new Set([primary]);
  for (const [source, target] of linkPairs(spec)) if (target === primary) read.add(source);
  for (const c of spec.clusters) if (c.role === 'remote' && c.primary === primary) read.add(c.name);
  return spec.clusters.map((c) => c.name).filter((n) => read.has(n));
}

export interface SampleService {
  namespace: string;
  name: string;
  port: number;
}

export interface SampleLayout {
  namespaces: Map<string, string[]>;
  services: SampleService[];
  /** Clusters that run pods behind a sample Service (caller-callee's caller cluster serves none). */
  serving: Set<string>;
}

/** The sample's injected namespaces and its Services there, by cluster. */
export function sampleLayout(spec: MeshSpec): SampleLayout {
  const namespaces = new Map<string, string[]>();
  const services = new Map<string, SampleService>();
  const serving = new Set<string>();
  if (spec.app.sample === 'none') return { namespaces, services: [], serving };
  const placement = appPlacement(spec);
  type Obj = {
    kind: string;
    metadata: { name: string; namespace?: string; labels?: Record<string, string> };
    spec?: {
      ports?: Array<{ port: number }>;
      selector?: Record<string, string>;
      template?: { metadata?: { labels?: Record<string, string> } };
    };
  };
  for (const [cluster, parts] of Object.entries(placement)) {
    if (!parts.length) continue;
    const objects = SAMPLE_APPS[spec.app.sample].manifests(cluster, placement) as Obj[];
    const injected = objects
      .filter((o) => o.kind === 'Namespace' && o.metadata.labels?.['istio-injection'] === 'enabled')
      .map((o) => o.metadata.name);
    namespaces.set(cluster, injected);
    const pods = objects
      .filter((o) => o.kind === 'Deployment')
      .map((d) => ({ ns: d.metadata.namespace, labels: d.spec?.template?.metadata?.labels ?? {} }));
    for (const o of objects) {
      const selector = o.kind === 'Service' ? Object.entries(o.spec?.selector ?? {}) : [];
      if (
        selector.length &&
        injected.includes(o.metadata.namespace ?? '') &&
        pods.some((p) => p.ns === o.metadata.namespace && selector.every(([k, v]) => p.labels[k] === v))
      )
        serving.add(cluster);
    }
    for (const o of objects) {
      const port = o.spec?.ports?.[0]?.port;
      if (o.kind !== 'Service' || !injected.includes(o.metadata.namespace ?? '') || !port) continue;
      services.set(`${o.metadata.namespace}/${o.metadata.name}`, {
        namespace: o.metadata.namespace!,
        name: o.metadata.name,
        port,
      });
    }
  }
  return { namespaces, services: [...services.values()], serving };
}
