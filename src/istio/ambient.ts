// What an ambient mesh (spec istio.dataPlane: ambient) applies beyond Istio's ambient profile, as
// Istio's ambient multi-network guide sets it up: an east-west Gateway of class istio-east-west per
// network (HBONE on 15008), namespaces in ambient mode, and the sample's Services marked global so
// that every cluster's ztunnel reaches their endpoints in every network. Pure data, no I/O.
import type * as k8s from '@kubernetes/client-node';
import type { ClusterSpec } from '../spec/schema';
import { ISTIO_NAMESPACE, NETWORK_LABEL } from './manifests';

export const GATEWAY_API_VERSION = 'gateway.networking.k8s.io/v1';
export const EASTWEST_GATEWAY_CLASS = 'istio-east-west';
/** The ambient east-west Gateway's name (in istio-system), as Istio's guide names it. */
export const AMBIENT_EASTWEST_GATEWAY = 'istio-eastwest';
/** HBONE: the port ztunnels and the east-west gateway carry mesh traffic on. */
export const HBONE_PORT = 15008;

export const DATAPLANE_MODE_LABEL = 'istio.io/dataplane-mode';
/** Services so labelled are global (seen by every cluster's ztunnel) under the ambient profile's serviceScopeConfigs. */
export const GLOBAL_SERVICE_LABEL = 'istio.io/global';
const INJECTION_LABEL = 'istio-injection';
/** What istio-cni sets on a pod whose traffic it redirects to ztunnel; istiod then tells ztunnels it speaks HBONE. */
export const REDIRECTION_ANNOTATION = 'ambient.istio.io/redirection';

/** The east-west Gateway of an ambient cluster's network: istiod deploys it and gives it an address. */
export function ambientEastWestGateway(cluster: ClusterSpec): object {
  return {
    apiVersion: GATEWAY_API_VERSION,
    kind: 'Gateway',
    metadata: {
      name: AMBIENT_EASTWEST_GATEWAY,
      namespace: ISTIO_NAMESPACE,
      labels: { [NETWORK_LABEL]: cluster.network },
    },
    spec: {
      gatewayClassName: EASTWEST_GATEWAY_CLASS,
      listeners: [
        {
          name: 'mesh',
          port: HBONE_PORT,
          protocol: 'HBONE',
          tls: { mode: 'Terminate', options: { 'gateway.istio.io/tls-terminate-mode': 'ISTIO_MUTUAL' } },
        },
      ],
    },
  };
}

export const WAYPOINT_GATEWAY_CLASS = 'istio-waypoint';
export const USE_WAYPOINT_LABEL = 'istio.io/use-waypoint';

/** A waypoint for a namespace's Services: istiod deploys it (an Envoy) and gives it a Service of the same name. */
export function waypointGateway(namespace: string, name: string): k8s.KubernetesObject {
  return {
    apiVersion: GATEWAY_API_VERSION,
    kind: 'Gateway',
    metadata: { name, namespace, labels: { 'istio.io/waypoint-for': 'service' } },
    spec: {
      gatewayClassName: WAYPOINT_GATEWAY_CLASS,
      listeners: [{ name: 'mesh', port: HBONE_PORT, protocol: 'HBONE' }],
    },
  } as k8s.KubernetesObject;
}

/**
 * A deploy's objects for an ambient mesh: namespaces meshflow would have labelled for sidecar
 * injection are put in ambient mode instead, and the Services in them are marked global (a
 * Service that already says whether it is global is left as it is). With a waypoint, each such
 * namespace gets one of that name and is labelled to use it.
 */
export function inAmbientMode(objects: k8s.KubernetesObject[], waypoint?: string): k8s.KubernetesObject[] {
  const ambient = new Set(
    objects
      .filter((o) => o.kind === 'Namespace' && o.metadata?.labels?.[INJECTION_LABEL] === 'enabled')
      .map((o) => o.metadata!.name!),
  );
  const out = objects.map((o) => {
    const labels = o.metadata?.labels ?? {};
    if (o.kind === 'Namespace' && ambient.has(o.metadata!.name!)) {
      const { [INJECTION_LABEL]: _, ...rest } = labels;
      const mode = { [DATAPLANE_MODE_LABEL]: 'ambient', ...(waypoint ? { [USE_WAYPOINT_LABEL]: waypoint } : {}) };
      return { ...o, metadata: { ...o.metadata, labels: { ...rest, ...mode } } };
    }
    if (o.kind === 'Service' && ambient.has(o.metadata?.namespace ?? '') && !(GLOBAL_SERVICE_LABEL in labels)) {
      return { ...o, metadata: { ...o.metadata, labels: { ...labels, [GLOBAL_SERVICE_LABEL]: 'true' } } };
    }
    return o;
  });
  return waypoint ? [...out, ...[...ambient].map((ns) => waypointGateway(ns, waypoint))] : out;
}

/**
 * Read access for Istio's reader ServiceAccount (the one remote secrets authenticate as) to every
 * Gateway API kind: Istio's reader role covers Gateways only, and an istiod or `istioctl analyze`
 * that watches another cluster's HTTPRoutes or GRPCRoutes through a remote secret is refused and
 * never syncs. Ambient meshes have the Gateway API, so their clusters grant this.
 */
export function readerGatewayApiAccess(readerServiceAccount: string, namespace: string): object[] {
  const name = 'meshflow-istio-reader-gateway-api';
  return [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name },
      rules: [{ apiGroups: ['gateway.networking.k8s.io'], resources: ['*'], verbs: ['get', 'list', 'watch'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [{ kind: 'ServiceAccount', name: readerServiceAccount, namespace }],
    },
  ];
}

/** The Gateway's address once istiod has programmed it (status Programmed=True), else undefined. */
export function programmedAddress(gateway: k8s.KubernetesObject | undefined): string | undefined {
  const status = (gateway as { status?: GatewayStatus } | undefined)?.status;
  const programmed = status?.conditions?.find((c) => c.type === 'Programmed');
  if (programmed?.status !== 'True') return undefined;
  return status?.addresses?.[0]?.value;
}

/** Why a Gateway is not programmed, in istiod's words (its Programmed or Accepted condition), if it says. */
export function notProgrammedReason(gateway: k8s.KubernetesObject | undefined): string | undefined {
  const conditions = (gateway as { status?: GatewayStatus } | undefined)?.status?.conditions ?? [];
  const c =
    conditions.find((x) => x.type === 'Accepted' && x.status !== 'True') ??
    conditions.find((x) => x.type === 'Programmed' && x.status !== 'True');
  return c ? `${c.type}=${c.status} (${c.reason}): ${c.message}` : undefined;
}

interface GatewayStatus {
  addresses?: Array<{ type?: string; value: string }>;
  conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
}
