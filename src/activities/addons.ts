// addons: Istio's observability addons (Prometheus, Grafana, Jaeger, Kiali) on each primary, from
// the samples/addons of the mesh's Istio build (installed beside its istioctl), as the multicluster guides
// apply them, with Kiali told which cluster it is in and where the other addons answer. Tracked
// and undone like every other object meshflow applies.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import YAML from 'yaml';
import { parseManifests } from '../adapters/kube';
import { ISTIO_NAMESPACE } from '../istio/manifests';
import type { IstioAddon } from '../istio/version';
import type { MeshSpec } from '../spec/schema';
import type { StepOutcome, StepRequest } from '../steps/contract';
import { PermanentError } from '../util/errors';
import { type ActivityDeps, kubeOf, objectsIn } from './deps';
import { runStep } from './step';

export function addonActivities(deps: ActivityDeps) {
  return {
    installAddons: (req: StepRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const c = req.step.cluster!;
        const { addons } = await deps.istio(req.spec.istio.version, ctx);
        const objects = addonObjects(addons, req.spec, c);
        const k = await kubeOf(deps, req.spec, c, ctx.signal);
        const refs = await k.apply(req.mesh, objects, {
          heartbeat: ctx.heartbeat,
          track: (r) => ctx.track(...objectsIn(c, r)),
        });
        const deployments = objects.filter((o) => o.kind === 'Deployment').map((o) => o.metadata!.name!);
        await k.waitDeploymentsAvailable(ISTIO_NAMESPACE, deployments, ctx.heartbeat);
        return { outputs: { addons: req.spec.addons.join(','), objects: String(refs.length) } };
      }),
  };
}

/** The objects of the spec's addons (manifests in `dir`) for one cluster, Kiali's configuration made the mesh's. */
export function addonObjects(dir: string, spec: MeshSpec, cluster: string): k8s.KubernetesObject[] {
  if (!fs.existsSync(dir)) {
    throw new PermanentError(
      `addons: Istio's addon manifests are not installed (${dir}); they come with meshflow's ` +
        'own istioctl build: unset MESHFLOW_ISTIOCTL_BIN or remove istioctl from PATH, then run `meshflow setup`',
    );
  }
  const objects = spec.addons.flatMap((addon) =>
    parseManifests(fs.readFileSync(path.join(dir, `${addon}.yaml`), 'utf8')).filter((o) => o.kind !== 'Namespace'),
  );
  for (const o of objects) {
    if (o.kind === 'ConfigMap' && o.metadata?.name === 'kiali') configureKiali(o as k8s.V1ConfigMap, spec, cluster);
  }
  return objects;
}

/** In-cluster addresses of the other addons, as their Services name them. */
const ADDON_URLS: Partial<Record<IstioAddon, [string, object]>> = {
  grafana: ['grafana', { enabled: true, internal_url: `http://grafana.${ISTIO_NAMESPACE}:3000` }],
  jaeger: [
    'tracing',
    { enabled: true, internal_url: `http://tracing.${ISTIO_NAMESPACE}:16685/jaeger`, use_grpc: true },
  ],
};

function configureKiali(cm: k8s.V1ConfigMap, spec: MeshSpec, cluster: string): void {
  const config = YAML.parse(cm.data?.['config.yaml'] ?? '{}') as Record<string, Record<string, unknown>>;
  config.kubernetes_config = { ...config.kubernetes_config, cluster_name: cluster };
  const external = (config.external_services ??= {}) as Record<string, unknown>;
  for (const addon of spec.addons) {
    const entry = ADDON_URLS[addon];
    if (entry) external[entry[0]] = entry[1];
  }
  // The sample ships a fixed placeholder; each install signs its login tokens with its own key.
  config.login_token = { ...config.login_token, signing_key: crypto.randomBytes(16).toString('hex') };
  cm.data = { ...cm.data, 'config.yaml': YAML.stringify(config) };
}
