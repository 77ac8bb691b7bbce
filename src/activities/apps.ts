// What a cluster's deploy-app step applies: the sample's parts placed there and the user's own
// manifests listed for it. User files are read here, on the worker (from the copy `up` put in the
// mesh's trust store, or from the file), so whatever they hold (Secrets included) never travels
// through workflow history.
import fs from 'node:fs';
import type * as k8s from '@kubernetes/client-node';
import { type Kube, ownedBy, parseManifests, refOf } from '../adapters/kube';
import { waitProgrammed } from './control-plane';
import { inAmbientMode } from '../istio/ambient';
import { SAMPLE_APPS, deploymentNames } from '../istio/sample-apps';
import { appPlacement } from '../plan/plan';
import type { MeshSpec } from '../spec/schema';
import type { StepOutcome, StepRequest } from '../steps/contract';
import { PermanentError } from '../util/errors';
import { type ActivityDeps, kubeOf, objectsIn } from './deps';
import { runStep } from './step';

export function appActivities(deps: ActivityDeps) {
  return {
    deployApp: (req: StepRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const c = req.step.cluster!;
        const k = await kubeOf(deps, req.spec, c, ctx.signal);
        const all = await appObjects(
          req.spec,
          c,
          (apiVersion, kind) => k.namespaced(apiVersion, kind),
          (entry) => deps.trustStore.get(req.mesh, entry, ctx.signal),
        );
        const { objects, foreign } = await withoutForeignNamespaces(k, req.mesh, all);
        const refs = await k.apply(req.mesh, objects, {
          heartbeat: ctx.heartbeat,
          track: (r) => ctx.track(...objectsIn(c, r)),
        });
        const byNamespace = new Map<string, string[]>();
        for (const d of deploymentNames(objects))
          byNamespace.set(d.namespace, [...(byNamespace.get(d.namespace) ?? []), d.name]);
        for (const [namespace, names] of byNamespace) await k.waitDeploymentsAvailable(namespace, names, ctx.heartbeat);
        // Waypoints: istiod deploys each and programs its Gateway once its Deployment and Service are up.
        const waypoints = objects.filter((o) => o.kind === 'Gateway' && o.metadata?.labels?.['istio.io/waypoint-for']);
        for (const w of waypoints) {
          await waitProgrammed(k, refOf(w), `waypoint of ${c}`, ctx, deps.loadBalancerTimeoutMs ?? 5 * 60_000);
        }
        const parts = appPlacement(req.spec)[c] ?? [];
        return {
          outputs: {
            ...(parts.length ? { [req.spec.app.sample]: parts.join(',') } : {}),
            objects: String(refs.length),
            ...(foreign.length ? { untouchedNamespaces: foreign.join(',') } : {}),
          },
        };
      }),
  };
}

/** Whether a kind lives in namespaces (API discovery); undefined for a kind the server does not know yet. */
export type Namespaced = (apiVersion: string, kind: string) => Promise<boolean | undefined>;

/** Kinds known to live outside namespaces, for kinds discovery cannot answer for yet (their CRD is in the same file). */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'CustomResourceDefinition',
  'ClusterRole',
  'ClusterRoleBinding',
  'PriorityClass',
  'StorageClass',
  'IngressClass',
  'MutatingWebhookConfiguration',
  'ValidatingWebhookConfiguration',
  'PersistentVolume',
]);

/** An entry of the mesh's trust store (a manifest `up` copied there), or undefined when it is not there. */
export type StoredEntry = (entry: string) => Promise<string | undefined>;

export async function appObjects(
  spec: MeshSpec,
  cluster: string,
  namespaced: Namespaced,
  stored: StoredEntry = async () => undefined,
): Promise<k8s.KubernetesObject[]> {
  const placement = appPlacement(spec);
  const objects = (
    spec.app.sample !== 'none' && placement[cluster]?.length
      ? SAMPLE_APPS[spec.app.sample].manifests(cluster, placement)
      : []
  ) as k8s.KubernetesObject[];
  for (const [i, m] of spec.app.manifests.entries()) {
    if (!m.clusters.includes(cluster)) continue;
    let text: string;
    if (m.stored !== undefined) {
      const copy = await stored(m.stored);
      if (copy === undefined) {
        throw new PermanentError(
          `app.manifests[${i}].file: ${m.file} as up copied it is not in this worker's trust store (entry ` +
            `${m.stored}): give every worker the MESHFLOW_TRUST_STORE the mesh was started with`,
        );
      }
      text = copy;
    } else {
      // A mesh started before up copied files (or with a store of one host's disk): the file on this host.
      try {
        text = fs.readFileSync(m.file, 'utf8');
      } catch (err) {
        throw new PermanentError(
          `app.manifests[${i}].file: cannot read ${m.file} on this worker: ${(err as Error).message}`,
        );
      }
    }
    let mine: k8s.KubernetesObject[];
    try {
      mine = parseManifests(text);
    } catch (err) {
      throw new PermanentError(`app.manifests[${i}].file: ${m.file}: ${(err as Error).message.split('\n')[0]}`);
    }
    mine.forEach((o, j) => {
      if (!o.apiVersion || !o.kind || !o.metadata?.name)
        throw new PermanentError(
          `app.manifests[${i}].file: object ${j + 1} of ${m.file} lacks apiVersion, kind or metadata.name`,
        );
    });
    const ns = m.namespace ?? 'default';
    for (const o of mine) {
      if (o.metadata!.namespace) continue;
      if ((await namespaced(o.apiVersion!, o.kind!)) ?? !CLUSTER_SCOPED.has(o.kind!)) o.metadata!.namespace = ns;
    }
    const declared = new Set(mine.filter((o) => o.kind === 'Namespace').map((o) => o.metadata!.name));
    if (m.namespace && !declared.has(m.namespace)) {
      mine.unshift({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: m.namespace, labels: { 'istio-injection': 'enabled' } },
      });
    }
    objects.push(...mine);
  }
  // One object once, even when a sample and a file (or two files) both declare it.
  const seen = new Set<string>();
  const unique = objects.filter((o) => {
    const key = `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
    return seen.has(key) ? false : (seen.add(key), true);
  });
  return spec.istio.dataPlane === 'ambient' ? inAmbientMode(unique, spec.app.waypoint) : unique;
}

/**
 * Drops the Namespace objects for namespaces that already exist and are not this mesh's: applying
 * them would make meshflow their owner, and teardown would delete the user's namespace. Returns
 * the names of the namespaces left alone.
 */
export async function withoutForeignNamespaces(
  k: Kube,
  mesh: string,
  objects: k8s.KubernetesObject[],
): Promise<{ objects: k8s.KubernetesObject[]; foreign: string[] }> {
  const foreign: string[] = [];
  for (const o of objects.filter((x) => x.kind === 'Namespace')) {
    const existing = await k.read({ apiVersion: 'v1', kind: 'Namespace', name: o.metadata!.name! });
    if (existing && !ownedBy(existing, mesh)) foreign.push(o.metadata!.name!);
  }
  return { objects: objects.filter((o) => !(o.kind === 'Namespace' && foreign.includes(o.metadata!.name!))), foreign };
}
