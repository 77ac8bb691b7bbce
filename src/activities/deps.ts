// What the mesh activities are built from (ports and adapters), and the lookups every step
// kind shares: a cluster of the spec, its access, a Kubernetes client bound to the step's
// cancellation.
import type { ClusterAccess } from '../adapters/providers';
import type { ClusterProvider } from '../providers/contract';
import { kubeFor } from '../adapters/providers';
import type { Kube, ObjectRef } from '../adapters/kube';
import type { ClusterSpec, MeshSpec } from '../spec/schema';
import type { Resource } from '../steps/contract';
import { PermanentError } from '../util/errors';
import { providerOf } from '../providers/registry';
import type { IstioToolsOf } from '../tools/istio-builds';
import type { TrustStore } from '../trust-store/store';
import type { TrafficPort } from '../checks/traffic';

export interface ActivityDeps {
  stateDir: string;
  /** Every provider's runtime, by id (providers/runtimes.ts builds them). */
  providers: Record<string, ClusterProvider>;
  /** The istioctl, addon manifests and pilot-discovery of the Istio build of a spec's istio.version. */
  istio: IstioToolsOf;
  /** Where meshes' CA keys and certificates are kept (MESHFLOW_TRUST_STORE; the state directory by default). */
  trustStore: TrustStore;
  /** How long to wait for an east-west gateway address before failing with a hint. */
  loadBalancerTimeoutMs?: number;
  /** The longest lifetime asked for a remote secret's reader token (default 24h); the workflow renews it at two thirds. */
  maxTokenSeconds?: number;
  /** How traffic checks reach pods and ingress gateways (default: exec over the Kubernetes API, fetch). */
  traffic?: TrafficPort;
}

/**
 * The runtime of a provider on this worker. A worker without it (started without the module the
 * other workers load) fails the attempt, not the step: the retry may land on a worker that has it.
 */
export function runtimeOf(deps: ActivityDeps, provider: string): ClusterProvider {
  const p = deps.providers[provider];
  if (!p)
    throw new Error(
      `this worker has no provider "${provider}" (will retry): start every worker with the MESHFLOW_PROVIDERS ` +
        'module that registers it',
    );
  return p;
}

/** Istio's `global.platform` for an ambient install on a cluster: its provider's, if it has one (gke). */
export const istioPlatformOf = (c: ClusterSpec): string | undefined => providerOf(c.provider).istioPlatform;

export function clusterOf(spec: MeshSpec, name: string): ClusterSpec {
  const c = spec.clusters.find((x) => x.name === name);
  if (!c) throw new PermanentError(`no cluster ${name} in mesh ${spec.name}`);
  return c;
}

/** The primary whose istiod serves a cluster: itself, or a remote's primary (its spec is checked). */
export { controlPlaneOf } from '../plan/plan';

export function accessOf(deps: ActivityDeps, spec: MeshSpec, name: string): Promise<ClusterAccess> {
  const c = clusterOf(spec, name);
  return runtimeOf(deps, c.provider).access(spec.name, c);
}

/** Every cluster's access at once, for code that looks them up synchronously. */
export async function accessAll(deps: ActivityDeps, spec: MeshSpec): Promise<(name: string) => ClusterAccess> {
  const all = new Map(
    await Promise.all(spec.clusters.map(async (c) => [c.name, await accessOf(deps, spec, c.name)] as const)),
  );
  return (name) => {
    const a = all.get(name);
    if (!a) throw new PermanentError(`no cluster ${name} in mesh ${spec.name}`);
    return a;
  };
}

export async function kubeOf(deps: ActivityDeps, spec: MeshSpec, name: string, signal?: AbortSignal): Promise<Kube> {
  return kubeFor(await accessOf(deps, spec, name), signal);
}

/** A ledger resource for objects applied in a cluster (none for an empty list). */
export const objectsIn = (cluster: string, refs: ObjectRef[]): Resource[] =>
  refs.length ? [{ type: 'objects', cluster, objects: refs }] : [];
