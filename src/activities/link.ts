// link: a remote secret that lets the target cluster's istiod read the source cluster's API,
// with a short-lived reader token straight from the TokenRequest API (never through history).
import type * as k8s from '@kubernetes/client-node';
import { kubeFor } from '../adapters/providers';
import {
  ISTIO_NAMESPACE,
  READER_CLUSTER_ROLE,
  READER_SERVICE_ACCOUNT,
  remoteKubeconfig,
  remoteSecretName,
} from '../istio/manifests';
import { parseDuration } from '../spec/duration';
import type { StepOutcome, StepRequest } from '../steps/contract';
import { PermanentError } from '../util/errors';
import { type ActivityDeps, accessOf, clusterOf, objectsIn } from './deps';
import { runStep } from './step';

const DAY_SECONDS = 86_400;
const LOOPBACK = ['127.0.0.1', 'localhost', '::1', '[::1]'];

export function linkActivities(deps: ActivityDeps) {
  return {
    linkClusters: (req: StepRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const source = clusterOf(req.spec, req.step.cluster!);
        const target = clusterOf(req.spec, req.step.target!);
        const from = await accessOf(deps, req.spec, source.name);
        const to = await accessOf(deps, req.spec, target.name);
        if (LOOPBACK.includes(new URL(from.apiServer).hostname) && !(from.local && to.local)) {
          throw new PermanentError(
            `cluster ${source.name}'s API server address ${from.apiServer} is only reachable from this machine, not from ` +
              `${target.name}; set clusters[${source.name}].apiServerAddress to an address ${target.name} can reach`,
          );
        }
        const src = kubeFor(from, ctx.signal);
        // The reader ServiceAccount comes with the control plane install (and is undone with it);
        // its binding is this mesh's own.
        const readerObjects = [
          {
            apiVersion: 'v1',
            kind: 'ServiceAccount',
            metadata: { name: READER_SERVICE_ACCOUNT, namespace: ISTIO_NAMESPACE },
          },
          {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'ClusterRoleBinding',
            metadata: { name: `meshflow-istio-reader-${req.mesh}` },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: READER_CLUSTER_ROLE },
            subjects: [{ kind: 'ServiceAccount', name: READER_SERVICE_ACCOUNT, namespace: ISTIO_NAMESPACE }],
          },
        ];
        await src.apply(req.mesh, readerObjects as k8s.KubernetesObject[], {
          track: (refs) => ctx.track(...objectsIn(source.name, refs.slice(1))),
        });
        // A token for the mesh's TTL plus an hour, at most a day: short-lived credentials, and the
        // workflow renews them at two thirds of their life while the mesh lives on. The API server
        // may shorten the lifetime (--service-account-max-token-expiration): its answer counts.
        const askedSeconds = Math.min(
          Math.ceil(parseDuration(req.spec.ttl)! / 1000) + 3600,
          deps.maxTokenSeconds ?? DAY_SECONDS,
        );
        const issuedAt = Date.now();
        // A token whose answer was lost is simply never used: asking again is safe.
        const tr = await src.retrying(() =>
          src.core.createNamespacedServiceAccountToken({
            name: READER_SERVICE_ACCOUNT,
            namespace: ISTIO_NAMESPACE,
            body: { spec: { audiences: [], expirationSeconds: askedSeconds } },
          }),
        );
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
        await kubeFor(to, ctx.signal).apply(req.mesh, [secret as k8s.KubernetesObject], {
          track: (refs) => ctx.track(...objectsIn(target.name, refs)),
        });
        return {
          outputs: {
            secret: `${target.name}/${ISTIO_NAMESPACE}/${remoteSecretName(source.name)}`,
            tokenExpiresAt: new Date(expiresAt).toISOString(),
            tokenRenewAt: new Date(issuedAt + ((expiresAt - issuedAt) * 2) / 3).toISOString(),
          },
        };
      }),
  };
}
