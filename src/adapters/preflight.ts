// The preflight of a cluster meshflow did not make: before any step changes anything, check that
// it can be reached, runs a Kubernetes the pinned Istio builds support, lets meshflow do what the plan
// will do, runs no Istio that is not this mesh's, and that the other clusters can reach its API.
// Each problem says what to fix.
import * as k8s from '@kubernetes/client-node';
import { isLoopbackUrl } from '../util/net';
import { ISTIO_LINES } from '../istio/version';
import { MANAGED_BY, MESH_LABEL, pause } from './kube';
import type { ClusterAccess } from './access';

/** The oldest Kubernetes minor the pinned Istio builds install on (istioctl's k8sversion.MinK8SVersion: 32 in each). */
export const MIN_KUBERNETES_MINOR = 32;

const ISTIO_NAMESPACE = 'istio-system';
const TIMEOUT_MS = 10_000;

/** What the plan does in a cluster, as access reviews: [verb, group, resource, namespace?, subresource?]. */
const NEEDED: Array<[string, string, string, string?, string?]> = [
  ...['create', 'delete'].flatMap((verb): Array<[string, string, string, string?, string?]> => [
    [verb, '', 'namespaces'],
    [verb, 'apiextensions.k8s.io', 'customresourcedefinitions'],
    [verb, 'rbac.authorization.k8s.io', 'clusterroles'],
    [verb, 'rbac.authorization.k8s.io', 'clusterrolebindings'],
    [verb, 'admissionregistration.k8s.io', 'mutatingwebhookconfigurations'],
    [verb, 'admissionregistration.k8s.io', 'validatingwebhookconfigurations'],
    [verb, 'rbac.authorization.k8s.io', 'roles', ISTIO_NAMESPACE],
    [verb, 'rbac.authorization.k8s.io', 'rolebindings', ISTIO_NAMESPACE],
    [verb, '', 'serviceaccounts', ISTIO_NAMESPACE],
    [verb, '', 'secrets', ISTIO_NAMESPACE],
    [verb, '', 'configmaps', ISTIO_NAMESPACE],
    [verb, '', 'services', ISTIO_NAMESPACE],
    [verb, 'apps', 'deployments', ISTIO_NAMESPACE],
    [verb, 'policy', 'poddisruptionbudgets', ISTIO_NAMESPACE],
    [verb, 'autoscaling', 'horizontalpodautoscalers', ISTIO_NAMESPACE],
    // The sample app, in namespaces of its own.
    [verb, 'apps', 'deployments'],
    [verb, '', 'services'],
  ]),
  // The reader token of remote secrets.
  ['create', '', 'serviceaccounts', ISTIO_NAMESPACE, 'token'],
  // The checks: a port-forward to istiod's pod (discovery, cross-network-endpoints), and curl run
  // in the sample's client pod (traffic).
  ['create', '', 'pods', ISTIO_NAMESPACE, 'portforward'],
  ['create', '', 'pods', undefined, 'exec'],
];

async function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  const ac = new AbortController();
  const timer = pause(TIMEOUT_MS, ac.signal).then(
    () => Promise.reject(new Error(`no answer to ${what} within ${TIMEOUT_MS / 1000} s`)),
    () => undefined as never,
  );
  try {
    return await Promise.race([p, timer]);
  } finally {
    ac.abort();
  }
}

function messageOf(err: unknown): string {
  const e = err as { code?: number; body?: unknown; message?: string };
  if (typeof e.code === 'number') {
    let message: string | undefined;
    try {
      const body = (typeof e.body === 'string' ? JSON.parse(e.body) : e.body) as { message?: string } | undefined;
      message = body?.message;
    } catch {
      message = undefined;
    }
    return `HTTP ${e.code}${message ? `: ${message}` : ''}`;
  }
  return e.message ?? String(err);
}

/** Who installed an object: this mesh, another meshflow mesh, or someone else. */
function installedBy(o: k8s.KubernetesObject, mesh: string): 'this mesh' | string {
  const l = o.metadata?.labels ?? {};
  if (l[MANAGED_BY] === 'meshflow') return l[MESH_LABEL] === mesh ? 'this mesh' : `meshflow mesh ${l[MESH_LABEL]}`;
  return 'not meshflow';
}

export async function preflightCluster(
  mesh: string,
  cluster: string,
  access: ClusterAccess,
  kc: k8s.KubeConfig,
  allLocal: boolean,
): Promise<string[]> {
  const where = `${access.apiServer} (${access.kubeconfig}${access.context ? `, context ${access.context}` : ''})`;
  // 1. Reachable, and a Kubernetes the pinned Istio supports.
  let version: k8s.VersionInfo;
  try {
    version = await withTimeout(kc.makeApiClient(k8s.VersionApi).getCode(), `GET /version from ${where}`);
  } catch (err) {
    return [
      `cannot reach its API server at ${where}: ${messageOf(err)}. Check the kubeconfig context and that the API ` +
        'server answers from this machine (VPN, firewall, credentials not expired).',
    ];
  }
  const problems: string[] = [];
  const minor = Number.parseInt(version.minor, 10);
  if (version.major !== '1' || !(minor >= MIN_KUBERNETES_MINOR)) {
    problems.push(
      `runs Kubernetes ${version.gitVersion}; Istio ${ISTIO_LINES} need 1.${MIN_KUBERNETES_MINOR} or later: ` +
        'upgrade the cluster or use another',
    );
  }

  // 2. The other clusters must reach its API (the remote secrets point there).
  if (isLoopbackUrl(access.apiServer) && !allLocal) {
    problems.push(
      `its API server address ${access.apiServer} is loopback: only this machine reaches it, not the other clusters' istiod. ` +
        `Set clusters[${cluster}].apiServerAddress to an address they can reach.`,
    );
  }

  // 3. Permissions for everything the plan does (and undoes).
  const authz = kc.makeApiClient(k8s.AuthorizationV1Api);
  const denied = (
    await Promise.all(
      NEEDED.map(async ([verb, group, resource, namespace, subresource]) => {
        const review = await withTimeout(
          authz.createSelfSubjectAccessReview({
            body: { spec: { resourceAttributes: { verb, group, resource, namespace, subresource } } },
          }),
          'a SelfSubjectAccessReview',
        );
        const what = `${resource}${subresource ? `/${subresource}` : ''}${group ? `.${group}` : ''}${namespace ? ` in ${namespace}` : ''}`;
        return review.status?.allowed ? [] : [{ verb, what }];
      }),
    ).catch((err: unknown) => [[{ verb: 'review', what: `permissions (${messageOf(err)})` }]])
  ).flat();
  if (denied.length) {
    // "create/delete namespaces, create serviceaccounts/token in istio-system": one entry per resource.
    const verbs = new Map<string, string[]>();
    for (const d of denied) verbs.set(d.what, [...(verbs.get(d.what) ?? []), d.verb]);
    problems.push(
      `the kubeconfig's user may not ${[...verbs].map(([what, v]) => `${v.join('/')} ${what}`).join(', ')}. ` +
        'meshflow installs Istio cluster-wide: give it cluster-admin ' +
        '(kubectl create clusterrolebinding meshflow-admin --clusterrole=cluster-admin --user=<user>)',
    );
    // Without them the reads below say nothing new.
    return problems;
  }

  // 4. An Istio that is not this mesh's is never taken over.
  const found: string[] = [];
  try {
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const deployments = await withTimeout(
      apps.listDeploymentForAllNamespaces({ labelSelector: 'app=istiod' }),
      'listing istiod Deployments',
    );
    for (const d of deployments.items) {
      const by = installedBy(d, mesh);
      if (by !== 'this mesh')
        found.push(
          `istiod Deployment ${d.metadata?.namespace}/${d.metadata?.name} (${by === 'not meshflow' ? 'not installed by meshflow' : `of ${by}`})`,
        );
    }
    const hooks = await withTimeout(
      kc.makeApiClient(k8s.AdmissionregistrationV1Api).listMutatingWebhookConfiguration(),
      'listing webhook configurations',
    );
    for (const h of hooks.items) {
      const isIstio = (h.webhooks ?? []).some((w) => w.name.endsWith('sidecar-injector.istio.io'));
      const by = installedBy(h, mesh);
      if (isIstio && by !== 'this mesh' && !found.some((f) => f.includes('istiod')))
        found.push(
          `sidecar injector ${h.metadata?.name} (${by === 'not meshflow' ? 'not installed by meshflow' : `of ${by}`})`,
        );
    }
  } catch (err) {
    problems.push(`cannot tell whether Istio is installed: ${messageOf(err)}`);
  }
  if (found.length) {
    problems.push(
      `already runs an Istio that is not this mesh's: ${found.join(', ')}. meshflow never takes over an Istio it did ` +
        'not install: remove it (istioctl uninstall --purge, or `meshflow down` for its mesh) or choose another cluster. ' +
        'Nothing in the cluster was changed.',
    );
  }
  return problems;
}
