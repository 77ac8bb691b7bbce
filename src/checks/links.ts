// Links between clusters (MF0301): each target's remote secret for each source it reads, that its
// kubeconfig reads the source, and that its token may do nothing more.
import type * as k8s from '@kubernetes/client-node';
import { SharedTlsKubeConfig } from '../util/kube-config';
import { ISTIO_NAMESPACE, READER_SERVICE_ACCOUNT, remoteSecretName } from '../istio/manifests';
import { linkPairs } from '../plan/plan';
import { eachTarget } from './define';
import { readerRights, rightsText } from './reader-rights';
import { fail, notFound, pass } from './result';
import { classifyError, describeError } from './run';

export const remoteSecret = eachTarget(
  'MF0301',
  (ctx) => linkPairs(ctx.spec),
  ([, target]) => target,
  async (ctx, [source, target], call) => {
    ctx.heartbeat({ verifying: `${source}->${target}` });
    const name = remoteSecretName(source);
    let s: k8s.V1Secret;
    try {
      s = await call(() => ctx.api[target].core.readNamespacedSecret({ name, namespace: ISTIO_NAMESPACE }));
    } catch (err) {
      if (!notFound(err)) throw err;
      return fail(
        `${ISTIO_NAMESPACE}/${name} does not exist in ${target}`,
        `${target} does not see ${source}'s services: re-run \`meshflow up\``,
      );
    }
    const labelled = s.metadata?.labels?.['istio/multiCluster'] === 'true';
    if (!labelled || s.metadata?.annotations?.['networking.istio.io/cluster'] !== source) {
      return fail(
        `${name} lacks label istio/multiCluster=true or annotation networking.istio.io/cluster=${source}`,
        'istiod ignores it: re-run `meshflow up`',
      );
    }
    if (!s.data?.[source]) {
      return fail(`${name} has no kubeconfig under key ${source}`, 'istiod cannot read it: re-run `meshflow up`');
    }
    const kc = new SharedTlsKubeConfig();
    kc.loadFromString(Buffer.from(s.data[source], 'base64').toString());
    const reader = ctx.clientsFor(kc);
    try {
      await call(() => reader.core.listServiceForAllNamespaces({ limit: 1 }));
      await call(() => reader.core.listPodForAllNamespaces({ limit: 1 }));
      await call(() => reader.discovery.listEndpointSliceForAllNamespaces({ limit: 1 }));
    } catch (err) {
      // Transient errors that outlast the budget are no verdict: the check's caller throws.
      if (classifyError(err) === 'transient') throw err;
      const code = (err as { code?: unknown }).code;
      return fail(
        `${name} cannot read ${source}'s API (${describeError(err)})`,
        code === 401 || code === 403
          ? 'the reader token was rejected or lacks rights: re-link with `meshflow up` (token expired after extend?)'
          : `${source}'s API server address in the secret is not reachable from ${target}: ` +
              `set clusters[${source}].apiServerAddress`,
      );
    }
    // Reader only: no write, escalate, bind or impersonate, neither cluster-wide nor in any namespace.
    const rights = await readerRights(reader.auth, ctx.api[source].core, call, ctx.options, (done, of) =>
      ctx.heartbeat({ verifying: `${source}->${target}`, namespacesReviewed: done, of }),
    );
    if (rights.cluster.length || rights.namespaces.size) {
      const namespaces = [...rights.namespaces.keys()].sort();
      const listed = namespaces.slice(0, 5).join(', ') + (namespaces.length > 5 ? ', ...' : '');
      return fail(
        `${name} may ${rightsText(rights, source)}`,
        'the reader ServiceAccount has more than read rights: check the ClusterRoleBindings' +
          (namespaces.length ? ` and the RoleBindings in ${listed}` : '') +
          ` of ${ISTIO_NAMESPACE}/${READER_SERVICE_ACCOUNT} in ${source}`,
      );
    }
    const fallback = rights.fallback.length
      ? ` (${rights.fallback.length} of them asked permission by permission: their rules review was incomplete)`
      : '';
    return pass(
      `${target} reads ${source} (services, pods, endpointslices) and may not create, change, delete, ` +
        `escalate, bind or impersonate, cluster-wide or in any of its ${rights.reviewed} namespaces${fallback}`,
    );
  },
);
