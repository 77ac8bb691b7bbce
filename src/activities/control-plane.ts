// control-plane, eastwest-gateway, expose-services, expose-istiod: Istio rendered by the istioctl
// of the spec's Istio build and applied with server-side apply, then waited for. Every object is tracked before it
// is applied, so a step that fails or is cancelled half-way is undone like a finished one.
import fs from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import * as k8s from '@kubernetes/client-node';
import { type Kube, type ObjectRef, ownedBy, parseManifests, pause, pollDelay } from '../adapters/kube';
import {
  EASTWEST_SERVICE,
  ISTIO_NAMESPACE,
  READER_SERVICE_ACCOUNT,
  controlPlaneOperator,
  crossNetworkGateway,
  eastWestOperator,
  istioctlRender,
  istiodDeployment,
  istiodExposure,
  type WebhookURLs,
} from '../istio/manifests';
import type { IstiodRunner } from '../adapters/providers';
import type { IstiodEndpoint, IstiodOptions } from '../local/clusters';
import type { ClusterSpec, MeshSpec } from '../spec/schema';
import type { StepOutcome, StepRequest } from '../steps/contract';
import { NotOursError, PermanentError } from '../util/errors';
import {
  AMBIENT_EASTWEST_GATEWAY,
  EASTWEST_GATEWAY_CLASS,
  GATEWAY_API_VERSION,
  ambientEastWestGateway,
  notProgrammedReason,
  programmedAddress,
  readerGatewayApiAccess,
} from '../istio/ambient';
import { type ActivityDeps, clusterOf, controlPlaneOf, istioPlatformOf, kubeOf, objectsIn, runtimeOf } from './deps';
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
          const primary = await kubeOf(deps, req.spec, c.primary!, ctx.signal);
          remotePilot =
            (await primary.waitLoadBalancer(ISTIO_NAMESPACE, EASTWEST_SERVICE, ctx.heartbeat, 1000)) ?? undefined;
          if (!remotePilot) throw new Error(`the east-west gateway of primary ${c.primary} has no address yet`);
        }
        const k = await kubeOf(deps, req.spec, c.name, ctx.signal);
        // Local clusters: istiod runs on this machine (the primary's serves its remotes too), and
        // the API server calls its webhooks there.
        const servedBy = controlPlaneOf(req.spec, c);
        const runner = runtimeOf(deps, c.provider).istiodRunner && runtimeOf(deps, servedBy.provider).istiodRunner;
        let webhooks: WebhookURLs | undefined;
        if (runner) {
          const e = await runner.istiodEndpoint(req.mesh, servedBy, req.spec.istio.revision);
          webhooks = {
            injectionURL: `${e.webhook}/inject/cluster/${c.name}/net/${c.network}`,
            validationURL: `${e.webhook}/validate`,
          };
        }
        const istio = await deps.istio(req.spec.istio.version, ctx);
        // Ambient: the Gateway API CRDs its build wants, before istiod (it watches them at start).
        const gatewayApi = ambient(req.spec) ? await gatewayApiCrds(k, req.mesh, istio.gatewayApiCrds) : [];
        const rendered = parseManifests(
          await istioctlRender(
            istio.istioctl,
            controlPlaneOperator(req.spec, c, remotePilot, webhooks, {
              revision: req.spec.istio.revision,
              platform: istioPlatformOf(c),
            }),
            ctx.signal,
          ),
        );
        // istio-system is the cacerts step's (made by it, or the user's and left as it is).
        const objects = [
          ...gatewayApi,
          ...rendered.filter((o) => !(o.kind === 'Namespace' && o.metadata?.name === ISTIO_NAMESPACE)),
          ...((ambient(req.spec)
            ? readerGatewayApiAccess(READER_SERVICE_ACCOUNT, ISTIO_NAMESPACE)
            : []) as k8s.KubernetesObject[]),
        ];
        const count = await applyTracked(k, req, c.name, objects, ctx);
        let istiodDebug: string | undefined;
        if (runner && c.role === 'primary') {
          const revision = req.spec.istio.revision;
          const env = istiodEnv(objects, istiodDeployment(revision));
          const opts = { env, pilotDiscovery: istio.pilotDiscovery, revision };
          istiodDebug = (await startLocalIstiod(k, runner, req, c, opts, ctx)).debug;
          await runner.serveRevision(req.mesh, c, revision);
        }
        const deployments = objects
          .filter((o) => o.kind === 'Deployment' && o.metadata?.namespace === ISTIO_NAMESPACE)
          .map((o) => o.metadata!.name!);
        await k.waitDeploymentsAvailable(ISTIO_NAMESPACE, deployments, ctx.heartbeat);
        if (c.role === 'remote') await annotateRemote(k, req.mesh, c.name, c.primary!);
        return {
          outputs: {
            version: req.spec.istio.version,
            ...(req.spec.istio.revision ? { revision: req.spec.istio.revision } : {}),
            objects: String(count),
            deployments: deployments.join(','),
            ...(istiodDebug ? { istiodDebug } : {}),
          },
        };
      }),

    installEastWestGateway: (req: StepRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const c = clusterOf(req.spec, req.step.cluster!);
        const k = await kubeOf(deps, req.spec, c.name, ctx.signal);
        const timeout = deps.loadBalancerTimeoutMs ?? 10 * 60_000;
        if (ambient(req.spec)) {
          await applyTracked(k, req, c.name, [ambientEastWestGateway(c)] as k8s.KubernetesObject[], ctx);
          const ref = {
            apiVersion: GATEWAY_API_VERSION,
            kind: 'Gateway',
            namespace: ISTIO_NAMESPACE,
            name: AMBIENT_EASTWEST_GATEWAY,
          };
          return { outputs: { address: await waitProgrammed(k, ref, `east-west Gateway of ${c.name}`, ctx, timeout) } };
        }
        const { istioctl } = await deps.istio(req.spec.istio.version, ctx);
        const objects = parseManifests(
          await istioctlRender(istioctl, eastWestOperator(req.spec, c, istioPlatformOf(c)), ctx.signal),
        );
        await applyTracked(k, req, c.name, objects, ctx);
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
        await applyTracked(await kubeOf(deps, req.spec, c, ctx.signal), req, c, [crossNetworkGateway()], ctx);
        return {};
      }),

    exposeIstiod: (req: StepRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const c = req.step.cluster!;
        await applyTracked(await kubeOf(deps, req.spec, c, ctx.signal), req, c, istiodExposure(), ctx);
        return {};
      }),
  };
}

const ambient = (spec: MeshSpec) => spec.istio.dataPlane === 'ambient';

/**
 * The Gateway API CRDs an ambient control plane needs, from the file beside the build's istioctl:
 * those the cluster lacks, and those it has from this mesh. A CRD someone else installed (GKE's
 * managed Gateway API, a platform team's) is used as it is and never taken over.
 */
async function gatewayApiCrds(k: Kube, mesh: string, file: string): Promise<k8s.KubernetesObject[]> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new PermanentError(
      `the Gateway API CRDs of this Istio build are not beside its istioctl (${(err as Error).message}): ` +
        'run `meshflow setup` (or `meshflow setup --all`) where the worker runs',
    );
  }
  const crds = parseManifests(text);
  const present = await Promise.all(
    crds.map((crd) =>
      k.read({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name: crd.metadata!.name! }),
    ),
  );
  return crds.filter((_, i) => !present[i] || ownedBy(present[i], mesh));
}

/**
 * The address of a Gateway istiod deploys itself (the ambient east-west Gateway, a waypoint) once
 * it is programmed: its Deployment runs and its Service has an address.
 */
export async function waitProgrammed(
  k: Kube,
  ref: ObjectRef,
  what: string,
  ctx: Pick<StepContext, 'heartbeat' | 'signal'>,
  timeoutMs: number,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  const name = `${ref.namespace}/${ref.name}`;
  for (let attempt = 0; ; attempt++) {
    const gateway = await k.retrying(() => k.read(ref));
    const address = programmedAddress(gateway);
    if (address) return address;
    if (Date.now() > deadline) {
      const why = gateway ? (notProgrammedReason(gateway) ?? 'istiod set no status on it') : 'it does not exist';
      const cls = (gateway as { spec?: { gatewayClassName?: string } } | undefined)?.spec?.gatewayClassName;
      throw ApplicationFailure.create({
        type: 'LoadBalancerPending',
        message:
          `the ${what}, Gateway ${name}, was not programmed in ${Math.round(timeoutMs / 1000)}s: ${why}. Hint: istiod ` +
          `deploys it (class ${cls ?? '?'}) and its Service needs an address (a load balancer for ` +
          `${EASTWEST_GATEWAY_CLASS}: cloud LB, MetalLB); check \`kubectl -n ${ref.namespace} describe gateway ${ref.name}\``,
        nonRetryable: true,
      });
    }
    ctx.heartbeat({ waitingFor: `Gateway ${name} programmed` });
    await pause(pollDelay(attempt), ctx.signal);
  }
}

/** istiod (pilot-discovery of the mesh's Istio build) for a local primary, with the CA the cacerts step put there. */
export async function startLocalIstiod(
  k: Kube,
  runner: IstiodRunner,
  req: StepRequest,
  c: ClusterSpec,
  opts: Pick<IstiodOptions, 'env' | 'pilotDiscovery' | 'revision'>,
  ctx: StepContext,
): Promise<IstiodEndpoint> {
  const secret = await k.retrying(() => k.core.readNamespacedSecret({ name: 'cacerts', namespace: ISTIO_NAMESPACE }));
  const cacerts = Object.fromEntries(
    Object.entries(secret.data ?? {}).map(([file, b64]) => [file, Buffer.from(b64, 'base64').toString()]),
  );
  return runner.startIstiod(req.mesh, c, { ...opts, clusterId: c.name, cacerts, signal: ctx.signal });
}

/**
 * The environment the rendered istiod Deployment gives its container (REVISION, PILOT_* and
 * whatever `pilot.env` holds), so that istiod run on this machine is configured as one in the
 * cluster would be. Values taken from the pod (fieldRef, resourceFieldRef) are the runner's.
 */
export function istiodEnv(objects: k8s.KubernetesObject[], name = 'istiod'): Record<string, string> {
  const d = objects.find(
    (o) => o.kind === 'Deployment' && o.metadata?.name === name && o.metadata.namespace === ISTIO_NAMESPACE,
  ) as k8s.V1Deployment | undefined;
  const container = d?.spec?.template.spec?.containers.find((x) => x.name === 'discovery');
  const env: Record<string, string> = {};
  for (const e of container?.env ?? []) if (e.value !== undefined && e.name !== 'KUBECONFIG') env[e.name] = e.value;
  return env;
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
