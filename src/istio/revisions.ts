// Which Istio revision serves a cluster and which injected a pod: read from the objects Istio's
// revision tags and injector leave (the `default` tag's webhook, a pod's sidecar.istio.io/status).
import type * as k8s from '@kubernetes/client-node';
import { DEFAULT_TAG } from './manifests';

/** The webhook name of the tag that serves istio-injection=enabled namespaces. */
export const TAG_WEBHOOK = `istio-revision-tag-${DEFAULT_TAG}`;
export const REVISION_LABEL = 'istio.io/rev';

/** The revision the cluster's `default` tag names (its webhook's istio.io/rev); undefined: Istio's default revision. */
export async function tagOf(admission: k8s.AdmissionregistrationV1Api): Promise<string | undefined> {
  try {
    const tag = await admission.readMutatingWebhookConfiguration({ name: TAG_WEBHOOK });
    const rev = tag.metadata?.labels?.[REVISION_LABEL];
    return rev && rev !== 'default' ? rev : undefined;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

/** The revision whose injector made the pod's sidecar (its sidecar.istio.io/status), or undefined: none did. */
export function podRevision(pod: k8s.V1Pod): string | undefined {
  const status = pod.metadata?.annotations?.['sidecar.istio.io/status'];
  if (!status) return undefined;
  try {
    return (JSON.parse(status) as { revision?: string }).revision ?? 'default';
  } catch {
    return undefined;
  }
}
