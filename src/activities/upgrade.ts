// upgrade: a new Istio version installed beside the running one as its own revision (canary),
// then each cluster moved to it by its `default` revision tag, its sample workloads restarted so
// that the new revision injects them. These activities do one cluster each; the workflow runs them
// in waves, verifies after each, and rolls a wave back (tag back, workloads restarted, the new
// revision's objects undone) when it fails. Istio's own recipe, as in its canary upgrade guide and
// `istioctl tag set default --revision`, done without a live istioctl: the tag's objects come from
// `istioctl manifest generate` (values.revisionTags), and the default revision's injector is made
// to match nothing while a tag serves its namespaces, as `istioctl tag set` does.
import { setTimeout as delay } from 'node:timers/promises';
import * as k8s from '@kubernetes/client-node';
import { type Kube, MANAGED_BY, MESH_LABEL, ownedBy, parseManifests } from '../adapters/kube';
import {
  DEFAULT_INJECTOR,
  DEFAULT_TAG,
  EASTWEST_SERVICE,
  ISTIOD_SERVICE,
  ISTIO_NAMESPACE,
  TAG_LABEL,
  controlPlaneOperator,
  istioctlRender,
  istiodDeployment,
  type WebhookURLs,
} from '../istio/manifests';
import { REVISION_LABEL, TAG_WEBHOOK, podRevision } from '../istio/revisions';
import { revisionLabel } from '../istio/version';
import type { ClusterSpec, MeshSpec } from '../spec/schema';
import type { RevisionRequest, StepOutcome } from '../steps/contract';
import { type ActivityDeps, clusterOf, controlPlaneOf, istioPlatformOf, kubeOf, objectsIn, runtimeOf } from './deps';
import { istiodEnv, startLocalIstiod } from './control-plane';
import { type StepContext, runStep } from './step';

const RESTARTED = 'meshflow.dev/restarted-for-revision';
/** How long a wave's workloads have to come back injected by the revision. */
const ROLLOUT_MS = 3 * 60_000;
const MUTATING = { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' };
/** Selectors that match nothing: how `istioctl tag set` deactivates the default revision's injector. */
const NEVER_MATCH = { matchExpressions: [{ key: 'istio.io/deactivated', operator: 'In', values: ['never-match'] }] };

/** The mesh as it runs at `version` and `revision`: what the revision's render is made from. */
const at = (spec: MeshSpec, r: RevisionRequest): MeshSpec => ({
  ...spec,
  istio: { ...spec.istio, version: r.version, revision: r.revision },
});

export function upgradeActivities(deps: ActivityDeps) {
  /** The webhook URLs of the revision's istiod when it runs on this machine (local, emulated GKE). */
  async function webhooksOf(mesh: string, spec: MeshSpec, c: ClusterSpec, revision?: string) {
    const servedBy = controlPlaneOf(spec, c);
    const runner = runtimeOf(deps, c.provider).istiodRunner && runtimeOf(deps, servedBy.provider).istiodRunner;
    if (!runner) return {};
    const e = await runner.istiodEndpoint(mesh, servedBy, revision);
    const webhooks: WebhookURLs = {
      injectionURL: `${e.webhook}/inject/cluster/${c.name}/net/${c.network}`,
      validationURL: `${e.webhook}/validate`,
    };
    return { runner, webhooks };
  }

  /** A remote's istiod address: its primary's east-west gateway. */
  async function remotePilotOf(spec: MeshSpec, c: ClusterSpec, ctx: StepContext): Promise<string | undefined> {
    if (c.role !== 'remote') return undefined;
    const primary = await kubeOf(deps, spec, c.primary!, ctx.signal);
    const address = await primary.waitLoadBalancer(ISTIO_NAMESPACE, EASTWEST_SERVICE, ctx.heartbeat, 1000);
    if (!address) throw new Error(`the east-west gateway of primary ${c.primary} has no address`);
    return address;
  }

  async function render(req: RevisionRequest, canary: boolean, ctx: StepContext): Promise<k8s.KubernetesObject[]> {
    const c = clusterOf(req.spec, req.step.cluster!);
    const mesh = at(req.spec, req);
    const { webhooks } = await webhooksOf(req.mesh, req.spec, c, req.revision);
    const istio = await deps.istio(req.version, ctx);
    const iop = controlPlaneOperator(mesh, c, await remotePilotOf(req.spec, c, ctx), webhooks, {
      revision: req.revision,
      canary,
      platform: istioPlatformOf(c),
    });
    return parseManifests(await istioctlRender(istio.istioctl, iop, ctx.signal)).filter(
      (o) => !(o.kind === 'Namespace' && o.metadata?.name === ISTIO_NAMESPACE),
    );
  }

  return {
    /**
     * The revision's control plane beside the running one: every object of its canary render (no
     * gateways, no tag), tracked; on a primary served from this machine, its own istiod process.
     */
    installRevision: (req: RevisionRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const c = clusterOf(req.spec, req.step.cluster!);
        const k = await kubeOf(deps, req.spec, c.name, ctx.signal);
        const objects = await render(req, true, ctx);
        const refs = await k.apply(req.mesh, objects, {
          heartbeat: ctx.heartbeat,
          track: (r) => ctx.track(...objectsIn(c.name, r)),
        });
        const deployment = istiodDeployment(req.revision);
        const { runner } = await webhooksOf(req.mesh, req.spec, c, req.revision);
        let istiodDebug: string | undefined;
        if (runner && c.role === 'primary') {
          const istio = await deps.istio(req.version, ctx);
          const opts = {
            env: istiodEnv(objects, deployment),
            pilotDiscovery: istio.pilotDiscovery,
            revision: req.revision,
          };
          istiodDebug = (await startLocalIstiod(k, runner, req, c, opts, ctx)).debug;
        }
        const deployments = objects
          .filter((o) => o.kind === 'Deployment' && o.metadata?.namespace === ISTIO_NAMESPACE)
          .map((o) => o.metadata!.name!);
        await k.waitDeploymentsAvailable(ISTIO_NAMESPACE, deployments, ctx.heartbeat);
        return {
          outputs: {
            revision: revisionLabel(req.revision),
            version: req.version,
            objects: String(refs.length),
            ...(istiodDebug ? { istiodDebug } : {}),
          },
        };
      }),

    /**
     * Points the cluster's `default` tag at the revision (undefined: back to Istio's default
     * revision), keeps the `istiod` Service on it, and restarts the mesh's workloads in injected
     * namespaces so that it injects them; waits until every one of their pods carries its proxy.
     */
    switchRevision: (req: RevisionRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const c = clusterOf(req.spec, req.step.cluster!);
        const k = await kubeOf(deps, req.spec, c.name, ctx.signal);
        const objects = await render(req, false, ctx);
        // The tag's objects (a revision), or the default revision's own injector (back to it).
        const tag = req.revision
          ? objects.filter((o) => o.metadata?.labels?.[TAG_LABEL] === DEFAULT_TAG)
          : objects.filter((o) => o.kind === 'MutatingWebhookConfiguration' && o.metadata?.name === DEFAULT_INJECTOR);
        if (!tag.length) throw new Error(`istioctl rendered no ${req.revision ? TAG_WEBHOOK : DEFAULT_INJECTOR}`);
        await k.apply(req.mesh, tag, { heartbeat: ctx.heartbeat, track: (r) => ctx.track(...objectsIn(c.name, r)) });
        if (req.revision) await deactivateDefaultInjector(k, req.mesh);
        // Back on the default revision: the tag goes first, or its webhook (named first) would inject yet.
        else await k.deleteOwned(req.mesh, [{ ...MUTATING, name: TAG_WEBHOOK }], ctx.heartbeat);
        await pointIstiodService(k, req.mesh, req.revision);
        const { runner } = await webhooksOf(req.mesh, req.spec, c, req.revision);
        if (runner && c.role === 'primary') await runner.serveRevision(req.mesh, c, req.revision);
        const restarted = await restartWorkloads(k, req, ctx);
        return { outputs: { revision: revisionLabel(req.revision), version: req.version, ...restarted } };
      }),

    /** The revision's istiod process on this machine stopped (its objects are the ledger's to undo). */
    stopRevision: (req: RevisionRequest): Promise<StepOutcome> =>
      runStep(async () => {
        const c = clusterOf(req.spec, req.step.cluster!);
        const runner = runtimeOf(deps, c.provider).istiodRunner;
        if (runner && c.role === 'primary') await runner.stopIstiod(req.mesh, c, req.revision);
        return { outputs: { stopped: revisionLabel(req.revision) } };
      }),
  };
}

/** The default revision's injector made to match nothing (when it is the mesh's), as `istioctl tag set` does. */
async function deactivateDefaultInjector(k: Kube, mesh: string): Promise<void> {
  const ref = { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' };
  const hook = (await k.read({ ...ref, name: DEFAULT_INJECTOR })) as k8s.V1MutatingWebhookConfiguration | undefined;
  if (!hook || !ownedBy(hook, mesh)) return;
  await k.retrying(() =>
    k.objects.patch(
      {
        ...ref,
        metadata: { name: DEFAULT_INJECTOR, labels: { [MANAGED_BY]: 'meshflow', [MESH_LABEL]: mesh } },
        webhooks: (hook.webhooks ?? []).map((w) => ({
          ...w,
          namespaceSelector: NEVER_MATCH,
          objectSelector: NEVER_MATCH,
        })),
      } as k8s.KubernetesObject,
      undefined,
      undefined,
      'meshflow',
      true,
      k8s.PatchStrategy.ServerSideApply,
    ),
  );
}

/** The `istiod` Service (the east-west gateway's istiod route and remotes reach it) selects the revision's pods. */
async function pointIstiodService(k: Kube, mesh: string, revision: string | undefined): Promise<void> {
  const svc = await k.read({ apiVersion: 'v1', kind: 'Service', name: ISTIOD_SERVICE, namespace: ISTIO_NAMESPACE });
  if (!svc || !ownedBy(svc, mesh)) return;
  const selector = revision ? { app: 'istiod', [REVISION_LABEL]: revision } : { app: 'istiod', istio: 'pilot' };
  await k.retrying(() =>
    k.core.patchNamespacedService(
      {
        name: ISTIOD_SERVICE,
        namespace: ISTIO_NAMESPACE,
        body: [{ op: 'replace', path: '/spec/selector', value: selector }],
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
    ),
  );
}

/**
 * Restarts the mesh's Deployments in the cluster's injected namespaces (a rollout, as `kubectl
 * rollout restart` does) and waits until every pod of theirs was injected by the revision.
 */
async function restartWorkloads(k: Kube, req: RevisionRequest, ctx: StepContext): Promise<Record<string, string>> {
  const want = revisionLabel(req.revision);
  const namespaces = (await k.retrying(() => k.core.listNamespace({ labelSelector: 'istio-injection=enabled' }))).items
    .filter((n) => ownedBy(n, req.mesh))
    .map((n) => n.metadata!.name!);
  const deployments: k8s.V1Deployment[] = [];
  for (const namespace of namespaces) {
    const list = await k.retrying(() =>
      k.apps.listNamespacedDeployment({ namespace, labelSelector: `${MESH_LABEL}=${req.mesh}` }),
    );
    deployments.push(...list.items);
  }
  for (const d of deployments) {
    if (d.spec?.template.metadata?.annotations?.[RESTARTED] === want) continue; // a retry: done already
    await k.retrying(() =>
      k.apps.patchNamespacedDeployment(
        {
          name: d.metadata!.name!,
          namespace: d.metadata!.namespace!,
          body: { spec: { template: { metadata: { annotations: { [RESTARTED]: want } } } } },
        },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      ),
    );
  }
  const deadline = Date.now() + ROLLOUT_MS;
  let pods = 0;
  for (;;) {
    const stale: string[] = [];
    pods = 0;
    for (const d of deployments) {
      const ns = d.metadata!.namespace!;
      const selector = Object.entries(d.spec?.selector.matchLabels ?? {})
        .map(([key, v]) => `${key}=${v}`)
        .join(',');
      const list = await k.retrying(() => k.core.listNamespacedPod({ namespace: ns, labelSelector: selector }));
      const live = list.items.filter((p) => !p.metadata?.deletionTimestamp);
      pods += live.length;
      for (const p of live) {
        const got = podRevision(p);
        if (got !== want) stale.push(`${ns}/${p.metadata?.name} (${got ?? 'no sidecar'})`);
      }
      if (live.length < (d.spec?.replicas ?? 1)) stale.push(`${ns}/${d.metadata?.name} has ${live.length} pod(s)`);
    }
    if (!stale.length) break;
    if (Date.now() > deadline)
      throw new Error(
        `after ${ROLLOUT_MS / 1000}s these pods of ${req.step.cluster} are not injected by revision ${want}: ` +
          `${stale.slice(0, 5).join(', ')}${stale.length > 5 ? ` and ${stale.length - 5} more` : ''}; ` +
          `its istiod must answer the ${TAG_WEBHOOK} webhook (meshflow logs <mesh> <cluster> istiod-<revision>)`,
      );
    ctx.heartbeat({ waitingFor: `pods injected by ${want}`, stale: stale.length });
    await delay(500, undefined, { signal: ctx.signal });
  }
  return { workloads: String(deployments.length), pods: String(pods) };
}
