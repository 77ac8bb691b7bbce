// The mesh workflow's activities, built by a factory from adapters (cluster providers and the
// istioctl path), so tests swap adapters and never Temporal. Every activity is idempotent: names
// are derived from the mesh, objects are server-side applied, CAs are reused when present.
import fs from 'node:fs';
import { Context, activityInfo } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import * as k8s from '@kubernetes/client-node';
import { type ClusterAccess, type ClusterProvider, PermanentError, kubeFor } from '../adapters/providers';
import { type Heartbeat, type Kube, MANAGED_BY, MESH_LABEL, type ObjectRef, parseManifests } from '../adapters/kube';
import { caDir, ensureClusterCa, meshRoot } from '../istio/trust';
import {
  EASTWEST_SERVICE,
  ISTIO_NAMESPACE,
  NETWORK_LABEL,
  READER_CLUSTER_ROLE,
  READER_SERVICE_ACCOUNT,
  controlPlaneOperator,
  crossNetworkGateway,
  eastWestOperator,
  istioctlRender,
  istiodExposure,
  remoteKubeconfig,
  remoteSecretName,
} from '../istio/manifests';
import { deploymentNames } from '../istio/sample-apps';
import { appObjects, withoutForeignNamespaces } from './apps';
import { type TrafficPort, kubeTraffic } from './traffic';
import { appPlacement } from '../plan/plan';
import { parseDuration } from '../spec/duration';
import type { ClusterSpec, MeshSpec } from '../spec/schema';
import type { CheckResult, Resource, StepOutcome, StepRequest } from '../workflows/types';
import type { MeshActivities, UndoRequest } from './types';
import { upgradeSpec } from '../spec/upgrade';
import { verifyMesh } from './verify';

export interface ActivityDeps {
  stateDir: string;
  providers: Record<ClusterSpec['provider'], ClusterProvider>;
  istioctl: string;
  /** How long to wait for an east-west gateway address before failing with a hint. */
  loadBalancerTimeoutMs?: number;
  /** The longest lifetime asked for a remote secret's reader token (default 24h); the workflow renews it at two thirds. */
  maxTokenSeconds?: number;
  /** How traffic checks reach pods and ingress gateways (default: exec over the Kubernetes API, fetch). */
  traffic?: TrafficPort;
}

const DAY_SECONDS = 86_400;

const heartbeat: Heartbeat = (detail) => {
  try {
    Context.current().heartbeat(detail);
  } catch {
    // outside an activity (direct calls in tests)
  }
};

function attempt(): number {
  try {
    return activityInfo().attempt;
  } catch {
    return 1;
  }
}

/** Errors a retry cannot fix become non-retryable failures with a type a user can act on. */
async function guard(fn: () => Promise<StepOutcome>): Promise<StepOutcome> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof PermanentError) throw ApplicationFailure.create({ type: 'PermanentError', message: err.message, nonRetryable: true });
    throw err;
  }
}

/** Waits for Deployments across namespaces to become available. */
async function waitAvailable(k: Kube, deployments: Array<{ namespace: string; name: string }>): Promise<void> {
  const byNamespace = new Map<string, string[]>();
  for (const d of deployments) byNamespace.set(d.namespace, [...(byNamespace.get(d.namespace) ?? []), d.name]);
  for (const [namespace, names] of byNamespace) await k.waitDeploymentsAvailable(namespace, names, heartbeat);
}

export function createActivities(deps: ActivityDeps): MeshActivities {
  const clusterOf = (spec: MeshSpec, name: string) => {
    const c = spec.clusters.find((x) => x.name === name);
    if (!c) throw new PermanentError(`no cluster ${name} in mesh ${spec.name}`);
    return c;
  };
  const access = (spec: MeshSpec, name: string): ClusterAccess => deps.providers[clusterOf(spec, name).provider].access(spec.name, clusterOf(spec, name));
  const kube = (spec: MeshSpec, name: string): Kube => kubeFor(access(spec, name));
  const objectsResource = (cluster: string, refs: ObjectRef[]): Resource[] => (refs.length ? [{ type: 'objects', cluster, objects: refs }] : []);
  const outcome = (resources: Resource[], extra: Partial<StepOutcome> = {}): StepOutcome => ({ resources, attempt: attempt(), ...extra });

  const activities: MeshActivities = {
    createCluster: (req) =>
      guard(async () => {
        const c = clusterOf(req.spec, req.step.cluster!);
        await deps.providers[c.provider].create(req.mesh, c, heartbeat);
        return outcome(c.provider === 'existing' ? [] : [{ type: 'cluster', cluster: c.name, provider: c.provider }]);
      }),

    createRootCa: (req) =>
      guard(async () => {
        const dir = caDir(deps.stateDir, req.mesh);
        const existed = fs.existsSync(dir);
        const user = req.spec.trust.rootCa;
        const root = await meshRoot(dir, user);
        // The directory holds the intermediates (and meshflow's own root); a user's root stays where it is.
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
        // Every cluster's intermediate too, now, while the clusters start: RSA 4096 key generation
        // takes seconds and would otherwise sit on the critical path in each cacerts step.
        await Promise.all(req.spec.clusters.map((c) => ensureClusterCa(dir, c.name, user)));
        return outcome(existed && attempt() === 1 ? [] : [{ type: 'file', path: dir }], {
          outputs: {
            root: user ? `user-provided ${user.certFile}` : 'generated by meshflow',
            rootFingerprint: Buffer.from(await root.certificate.getThumbprint('SHA-256')).toString('hex').slice(0, 16),
          },
        });
      }),

    installCacerts: (req) =>
      guard(async () => {
        const c = clusterOf(req.spec, req.step.cluster!);
        const k = kube(req.spec, c.name);
        const created: Resource[] = [];
        const ns = await k.read({ apiVersion: 'v1', kind: 'Namespace', name: ISTIO_NAMESPACE });
        const owned = !ns || ns.metadata?.labels?.[MESH_LABEL] === req.mesh;
        // istio-system is labelled with the network in any case; it is ours (and undone) only if we made it.
        const nsObject = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ISTIO_NAMESPACE, labels: { [NETWORK_LABEL]: c.network } } };
        if (owned) created.push(...objectsResource(c.name, await k.apply(req.mesh, [nsObject])));
        else await k.objects.patch(nsObject, undefined, undefined, 'meshflow', true, k8s.PatchStrategy.ServerSideApply);
        const files = await ensureClusterCa(caDir(deps.stateDir, req.mesh), c.name, req.spec.trust.rootCa);
        const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'cacerts', namespace: ISTIO_NAMESPACE }, type: 'Opaque', stringData: files };
        const existing = await k.read({ apiVersion: 'v1', kind: 'Secret', namespace: ISTIO_NAMESPACE, name: 'cacerts' });
        if (existing && existing.metadata?.labels?.[MESH_LABEL] !== req.mesh) {
          throw new PermanentError(`cluster ${c.name} already has a cacerts secret that meshflow did not create for mesh ${req.mesh}; remove it or use that CA`);
        }
        created.push(...objectsResource(c.name, await k.apply(req.mesh, [secret])));
        return outcome(created);
      }),

    installControlPlane: (req) =>
      guard(async () => {
        const c = clusterOf(req.spec, req.step.cluster!);
        let remotePilot: string | undefined;
        if (c.role === 'remote') {
          remotePilot = (await kube(req.spec, c.primary!).waitLoadBalancer(ISTIO_NAMESPACE, EASTWEST_SERVICE, heartbeat, 1000)) ?? undefined;
          if (!remotePilot) throw new Error(`the east-west gateway of primary ${c.primary} has no address yet`);
        }
        const objects = parseManifests(await istioctlRender(deps.istioctl, controlPlaneOperator(req.spec, c, remotePilot)));
        const k = kube(req.spec, c.name);
        const refs = await k.apply(req.mesh, objects, heartbeat);
        const deployments = objects.filter((o) => o.kind === 'Deployment' && o.metadata?.namespace === ISTIO_NAMESPACE).map((o) => o.metadata!.name!);
        await k.waitDeploymentsAvailable(ISTIO_NAMESPACE, deployments, heartbeat);
        if (c.role === 'remote') {
          await k.objects.patch(
            { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ISTIO_NAMESPACE, annotations: { 'topology.istio.io/controlPlaneClusters': c.primary! } } },
            undefined, undefined, 'meshflow-remote', true, k8s.PatchStrategy.ServerSideApply,
          );
        }
        return outcome(objectsResource(c.name, refs), { outputs: { objects: String(refs.length), deployments: deployments.join(',') } });
      }),

    installEastWestGateway: (req) =>
      guard(async () => {
        const c = clusterOf(req.spec, req.step.cluster!);
        const objects = parseManifests(await istioctlRender(deps.istioctl, eastWestOperator(req.spec, c)));
        const k = kube(req.spec, c.name);
        const refs = await k.apply(req.mesh, objects, heartbeat);
        const timeout = deps.loadBalancerTimeoutMs ?? 10 * 60_000;
        const address = await k.waitLoadBalancer(ISTIO_NAMESPACE, EASTWEST_SERVICE, heartbeat, timeout);
        if (!address) {
          // Keep what was applied in the ledger: the failure's compensation removes it.
          throw ApplicationFailure.create({
            type: 'LoadBalancerPending',
            message: `the east-west gateway of ${c.name} got no load balancer address in ${Math.round(timeout / 1000)}s. ` +
              'Hint: the cluster needs a load balancer implementation (cloud LB, MetalLB) or spec.externalIPs on the Service; check `kubectl -n istio-system describe svc istio-eastwestgateway`.',
            nonRetryable: true,
            details: [{ resources: objectsResource(c.name, refs) }],
          });
        }
        return outcome(objectsResource(c.name, refs), { outputs: { address } });
      }),

    exposeServices: (req) =>
      guard(async () => {
        const c = req.step.cluster!;
        return outcome(objectsResource(c, await kube(req.spec, c).apply(req.mesh, [crossNetworkGateway() as k8s.KubernetesObject])));
      }),

    exposeIstiod: (req) =>
      guard(async () => {
        const c = req.step.cluster!;
        return outcome(objectsResource(c, await kube(req.spec, c).apply(req.mesh, istiodExposure() as k8s.KubernetesObject[])));
      }),

    linkClusters: (req) =>
      guard(async () => {
        const source = clusterOf(req.spec, req.step.cluster!);
        const target = clusterOf(req.spec, req.step.target!);
        const from = access(req.spec, source.name);
        const to = access(req.spec, target.name);
        const host = new URL(from.apiServer).hostname;
        if (['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host) && !(from.local && to.local)) {
          throw new PermanentError(
            `cluster ${source.name}'s API server address ${from.apiServer} is only reachable from this machine, not from ${target.name}; ` +
              `set clusters[${source.name}].apiServerAddress to an address ${target.name} can reach`,
          );
        }
        const src = kubeFor(from);
        // The reader ServiceAccount and its binding come with the control plane install; make sure of them.
        const readerObjects = [
          { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: READER_SERVICE_ACCOUNT, namespace: ISTIO_NAMESPACE } },
          {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'ClusterRoleBinding',
            metadata: { name: `meshflow-istio-reader-${req.mesh}` },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: READER_CLUSTER_ROLE },
            subjects: [{ kind: 'ServiceAccount', name: READER_SERVICE_ACCOUNT, namespace: ISTIO_NAMESPACE }],
          },
        ];
        const readerRefs = await src.apply(req.mesh, readerObjects as k8s.KubernetesObject[]);
        // A token for the mesh's TTL plus an hour, at most a day: short-lived credentials, and the
        // workflow renews them at two thirds of their life while the mesh lives on. The API server
        // may shorten the lifetime (--service-account-max-token-expiration): its answer counts.
        const askedSeconds = Math.min(Math.ceil(parseDuration(req.spec.ttl)! / 1000) + 3600, deps.maxTokenSeconds ?? DAY_SECONDS);
        const issuedAt = Date.now();
        const tr = await src.core.createNamespacedServiceAccountToken({
          name: READER_SERVICE_ACCOUNT,
          namespace: ISTIO_NAMESPACE,
          body: { spec: { audiences: [], expirationSeconds: askedSeconds } },
        });
        const expiresAt = new Date(tr.status!.expirationTimestamp ?? issuedAt + askedSeconds * 1000).getTime();
        const secret = {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: {
            name: remoteSecretName(source.name),
            namespace: ISTIO_NAMESPACE,
            labels: { 'istio/multiCluster': 'true' },
            annotations: { 'networking.istio.io/cluster': source.name },
          },
          type: 'Opaque',
          stringData: { [source.name]: remoteKubeconfig(source.name, from.apiServer, from.caData, tr.status!.token) },
        };
        const refs = await kubeFor(to).apply(req.mesh, [secret as k8s.KubernetesObject]);
        return outcome([...objectsResource(source.name, readerRefs.slice(1)), ...objectsResource(target.name, refs)], {
          outputs: {
            secret: `${target.name}/${ISTIO_NAMESPACE}/${remoteSecretName(source.name)}`,
            tokenExpiresAt: new Date(expiresAt).toISOString(),
            tokenRenewAt: new Date(issuedAt + ((expiresAt - issuedAt) * 2) / 3).toISOString(),
          },
        });
      }),

    deployApp: (req) =>
      guard(async () => {
        const c = req.step.cluster!;
        const k = kube(req.spec, c);
        const { objects, foreign } = await withoutForeignNamespaces(k, req.mesh, await appObjects(req.spec, c, (apiVersion, kind) => k.namespaced(apiVersion, kind)));
        const refs = await k.apply(req.mesh, objects, heartbeat);
        await waitAvailable(k, deploymentNames(objects));
        const parts = appPlacement(req.spec)[c] ?? [];
        return outcome(objectsResource(c, refs), {
          outputs: {
            ...(parts.length ? { [req.spec.app.sample]: parts.join(',') } : {}),
            objects: String(refs.length),
            ...(foreign.length ? { untouchedNamespaces: foreign.join(',') } : {}),
          },
        });
      }),

    verifyMesh: (req) =>
      guard(async () => {
        const checks: CheckResult[] = await verifyMesh(req.spec, (name: string) => access(req.spec, name), deps.traffic ?? kubeTraffic, heartbeat);
        return outcome([], { checks });
      }),

    async undoResource(req: UndoRequest): Promise<void> {
      const r = req.resource;
      if (r.type === 'cluster') {
        const c = clusterOf(req.spec, r.cluster);
        await deps.providers[c.provider].delete(req.mesh, c, heartbeat);
      } else if (r.type === 'file') {
        fs.rmSync(r.path, { recursive: true, force: true });
      } else {
        let k: Kube;
        try {
          k = kube(req.spec, r.cluster);
        } catch (err) {
          // The cluster itself is gone (deleted by an earlier undo): so is everything in it.
          if (err instanceof PermanentError) return;
          throw err;
        }
        const notOurs = await k.deleteOwned(req.mesh, r.objects);
        if (notOurs.length) heartbeat({ kept: notOurs, reason: `not labelled ${MANAGED_BY}=meshflow for this mesh` });
      }
    },
  };
  // Activities scheduled by a workflow of an earlier build carry that build's spec: fill in what it lacks.
  return Object.fromEntries(
    Object.entries(activities).map(([name, fn]) => [name, (req: StepRequest | UndoRequest) => (fn as (r: typeof req) => Promise<unknown>)({ ...req, spec: upgradeSpec(req.spec) })]),
  ) as unknown as MeshActivities;
}

