// control-plane, eastwest-gateway, expose-services, expose-istiod: Istio rendered by the pinned
// istioctl and applied with server-side apply, then waited for. Every object is tracked before it
// is applied, so a step that fails or is cancelled half-way is undone like a finished one.
import { ApplicationFailure } from '@temporalio/common';
import * as k8s from '@kubernetes/client-node';
import { type Kube, ownedBy, parseManifests } from '../adapters/kube';
import {
  EASTWEST_SERVICE,
  ISTIO_NAMESPACE,
  controlPlaneOperator,
  crossNetworkGateway,
  eastWestOperator,
  istioctlRender,
  istiodExposure,
} from '../istio/manifests';
import type { StepOutcome, StepRequest } from '../steps/contract';
import { NotOursError } from '../steps/errors';
import { type ActivityDeps, clusterOf, kubeOf, objectsIn } from './deps';
import { type StepContext, runStep } from './step';

const CONTROL_PLANE_CLUSTERS = 'topology.istio.io/controlPlaneClusters';

/** Applies objects to a cluster as the mesh's, tracking them first; returns how many. */
async function applyTracked(
  k: Kube,
  req: StepRequest,
  cluster: string,
  objects: object[],
  ctx: StepContext,
): Promise<number> {
  const refs = await k.apply(req.mesh, objects as k8s.KubernetesObject[], {
    heartbeat: ctx.heartbeat,
    track: (r) => ctx.track(...objectsIn(cluster, r)),
  });
  return refs.length;
}

export function controlPlaneActivities(deps: ActivityDeps) {
  return {
    installControlPlane: (req: StepRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const c = clusterOf(req.spec, req.step.cluster!);
        let remotePilot: string | undefined;
        if (c.role === 'remote') {
          const primary = kubeOf(deps, req.spec, c.primary!, ctx.signal);
          remotePilot =
            (await primary.waitLoadBalancer(ISTIO_NAMESPACE, EASTWEST_SERVICE, ctx.heartbeat, 1000)) ?? undefined;
          if (!remotePilot) throw new Error(`the east-west gateway of primary ${c.primary} has no address yet`);
        }
        const k = kubeOf(deps, req.spec, c.name, ctx.signal);
        const rendered = parseManifests(
          await istioctlRender(deps.istioctl, controlPlaneOperator(req.spec, c, remotePilot), ctx.signal),
        );
        // istio-system is the cacerts step's (made by it, or the user's and left as it is).
        const objects = rendered.filter((o) => !(o.kind === 'Namespace' && o.metadata?.name === ISTIO_NAMESPACE));
        const count = await applyTracked(k, req, c.name, objects, ctx);
        const deployments = objects
          .filter((o) => o.kind === 'Deployment' && o.metadata?.namespace === ISTIO_NAMESPACE)
          .map((o) => o.metadata!.name!);
        await k.waitDeploymentsAvailable(ISTIO_NAMESPACE, deployments, ctx.heartbeat);
        if (c.role === 'remote') await annotateRemote(k, req.mesh, c.name, c.primary!);
        return { outputs: { objects: String(count), deployments: deployments.join(',') } };
      }),

    installEastWestGateway: (req: StepRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const c = clusterOf(req.spec, req.step.cluster!);
        const k = kubeOf(deps, req.spec, c.name, ctx.signal);
        const objects = parseManifests(await istioctlRender(deps.istioctl, eastWestOperator(req.spec, c), ctx.signal));
        await applyTracked(k, req, c.name, objects, ctx);
        const timeout = deps.loadBalancerTimeoutMs ?? 10 * 60_000;
        const address = await k.waitLoadBalancer(ISTIO_NAMESPACE, EASTWEST_SERVICE, ctx.heartbeat, timeout);
        if (!address) {
          throw ApplicationFailure.create({
            type: 'LoadBalancerPending',
            message:
              `the east-west gateway of ${c.name} got no load balancer address in ${Math.round(timeout / 1000)}s. ` +
              'Hint: the cluster needs a load balancer implementation (cloud LB, MetalLB) or spec.externalIPs on the ' +
              'Service; check `kubectl -n istio-system describe svc istio-eastwestgateway`.',
            nonRetryable: true,
          });
        }
        return { outputs: { address } };
      }),

    exposeServices: (req: StepRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const c = req.step.cluster!;
        await applyTracked(kubeOf(deps, req.spec, c, ctx.signal), req, c, [crossNetworkGateway()], ctx);
        return {};
      }),

    exposeIstiod: (req: StepRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const c = req.step.cluster!;
        await applyTracked(kubeOf(deps, req.spec, c, ctx.signal), req, c, istiodExposure(), ctx);
        return {};
      }),
  };
}

/** A remote's istio-system names its primary; annotated by meshflow only when the namespace is the mesh's. */
async function annotateRemote(k: Kube, mesh: string, cluster: string, primary: string): Promise<void> {
  const ns = await k.read({ apiVersion: 'v1', kind: 'Namespace', name: ISTIO_NAMESPACE });
  if (ns && !ownedBy(ns, mesh)) {
    if (ns.metadata?.annotations?.[CONTROL_PLANE_CLUSTERS] === primary) return;
    throw new NotOursError(
      `namespace ${ISTIO_NAMESPACE} of remote cluster ${cluster} is not mesh ${mesh}'s and does not name its primary; ` +
        `meshflow does not change it: kubectl annotate ns ${ISTIO_NAMESPACE} ${CONTROL_PLANE_CLUSTERS}=${primary}`,
    );
  }
  await k.retrying(() =>
    k.objects.patch(
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ISTIO_NAMESPACE, annotations: { [CONTROL_PLANE_CLUSTERS]: primary } },
      },
      undefined,
      undefined,
      'meshflow-remote',
      true,
      k8s.PatchStrategy.ServerSideApply,
    ),
  );
}
