// What meshflow applies to clusters for Istio: control planes and east-west gateways rendered by
// the pinned istioctl, and the small objects Istio's multicluster guides apply by hand.
import { execa } from 'execa';
import YAML from 'yaml';
import { type Values, type ValuesContext, deepMerge, ownedValues } from '../spec/istio-values';
import type { ClusterSpec, MeshSpec } from '../spec/schema';
import { ISTIO_HUB } from './version';

export const ISTIO_NAMESPACE = 'istio-system';
export const NETWORK_LABEL = 'topology.istio.io/network';

export async function istioctlRender(istioctl: string, iop: object, signal?: AbortSignal): Promise<string> {
  // A cancelled step kills istioctl at once (`cancelSignal`), rather than waiting for it.
  const r = await execa(istioctl, ['manifest', 'generate', '-f', '-'], {
    input: YAML.stringify(iop),
    reject: false,
    timeout: 120_000,
    cancelSignal: signal,
  });
  signal?.throwIfAborted();
  if (r.exitCode !== 0)
    throw new Error(`istioctl manifest generate failed: ${r.stderr.split('\n').slice(-5).join(' ')}`);
  return r.stdout;
}

/**
 * The Helm values of one operator: the release images of the spec's Istio version (defaults the
 * user's `global.hub`/`tag` override, e.g. for a mirror; and `global.platform: gke` for ambient on GKE), then the user's `istio.values`
 * deep-merged, then the values meshflow owns (validation refuses a spec that sets those).
 * Owned `meshConfig.*` goes to the operator's meshConfig, which istioctl merges into the values.
 */
function operatorValues(ctx: ValuesContext, istioPlatform?: string): { values: Values; meshConfig?: Values } {
  const { meshConfig, ...owned } = ownedValues(ctx);
  // Ambient on GKE (its provider's istioPlatform, given by the caller): Istio's GKE platform
  // settings (istio-cni's binary directory, the ResourceQuotas GKE requires for the node-critical
  // priority class outside kube-system), as Istio's docs ask.
  const platform = ctx.mesh.istio.dataPlane === 'ambient' && istioPlatform ? { platform: istioPlatform } : {};
  const defaults = { global: { hub: ISTIO_HUB, tag: ctx.mesh.istio.version, ...platform } };
  const values = deepMerge(defaults, ctx.mesh.istio.values, owned);
  return { values, meshConfig: meshConfig as Values | undefined };
}

/**
 * Where the API server calls Istio's webhooks when istiod runs outside the cluster (local
 * clusters: istiod is a process on this machine): URLs instead of the in-cluster `istiod` Service.
 */
export interface WebhookURLs {
  injectionURL: string;
  validationURL: string;
}

/** How a control plane is rendered: its revision (default: the spec's) and whether it is an upgrade's canary. */
export interface ControlPlaneRender {
  /** The revision (istio.io/rev) to render; undefined: Istio's default revision. */
  revision?: string;
  /** Istio's `global.platform` for an ambient install: the cluster's provider's (gke), if it has one. */
  platform?: string;
  /**
   * An upgrade's canary beside the running revision: no gateways and no revision tag (the upgrade
   * moves the tag itself, wave by wave).
   */
  canary?: boolean;
}

/**
 * The IstioOperator of a cluster's control plane (primary) or of its remote profile. A revisioned
 * control plane that is not a canary carries the `default` revision tag, so that namespaces
 * labelled istio-injection=enabled are injected by it.
 */
export function controlPlaneOperator(
  mesh: MeshSpec,
  cluster: ClusterSpec,
  remotePilotAddress?: string,
  webhooks?: WebhookURLs,
  render: ControlPlaneRender = { revision: mesh.istio.revision },
): object {
  const rendered = operatorValues({ mesh, cluster, operator: 'control-plane', remotePilotAddress }, render.platform);
  const meshConfig = rendered.meshConfig;
  const { revision, canary } = render;
  const values = deepMerge(
    rendered.values,
    webhooks
      ? { istiodRemote: { injectionURL: webhooks.injectionURL }, base: { validationURL: webhooks.validationURL } }
      : {},
    revision && !canary ? { revisionTags: ['default'] } : {},
  );
  return {
    apiVersion: 'install.istio.io/v1alpha1',
    kind: 'IstioOperator',
    spec: {
      profile:
        cluster.role === 'remote' ? 'remote' : mesh.istio.dataPlane === 'ambient' ? 'ambient' : mesh.istio.profile,
      ...(revision ? { revision } : {}),
      ...(canary && cluster.role !== 'remote'
        ? { components: { ingressGateways: [{ name: 'istio-ingressgateway', enabled: false }] } }
        : {}),
      meshConfig,
      values,
    },
  };
}

/** The label of the objects of a revision tag (its webhook and Service), and the tag meshflow moves. */
export const TAG_LABEL = 'istio.io/tag';
export const DEFAULT_TAG = 'default';
/** The injector of Istio's default revision (no revision): deactivated while a tag serves its namespaces. */
export const DEFAULT_INJECTOR = 'istio-sidecar-injector';
/** The Service Istio's own guides route to (the east-west gateway's istiod-vs, remotes): kept on the tag's revision. */
export const ISTIOD_SERVICE = 'istiod';

export const EASTWEST_SERVICE = 'istio-eastwestgateway';

/** The east-west gateway's IstioOperator; `platform`: Istio's global.platform for ambient (the provider's). */
export function eastWestOperator(mesh: MeshSpec, cluster: ClusterSpec, platform?: string): object {
  const { values } = operatorValues({ mesh, cluster, operator: 'east-west' }, platform);
  return {
    apiVersion: 'install.istio.io/v1alpha1',
    kind: 'IstioOperator',
    spec: {
      profile: 'empty',
      // Its proxy's discovery address: the revision's istiod.
      ...(mesh.istio.revision ? { revision: mesh.istio.revision } : {}),
      components: {
        ingressGateways: [
          {
            name: EASTWEST_SERVICE,
            enabled: true,
            label: { istio: 'eastwestgateway', app: EASTWEST_SERVICE, [NETWORK_LABEL]: cluster.network },
            k8s: {
              env: [{ name: 'ISTIO_META_REQUESTED_NETWORK_VIEW', value: cluster.network }],
              service: {
                ports: [
                  { name: 'status-port', port: 15021, targetPort: 15021 },
                  { name: 'tls', port: 15443, targetPort: 15443 },
                  { name: 'tls-istiod', port: 15012, targetPort: 15012 },
                  { name: 'tls-webhook', port: 15017, targetPort: 15017 },
                ],
              },
            },
          },
        ],
      },
      values,
    },
  };
}

export function crossNetworkGateway(): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'Gateway',
    metadata: { name: 'cross-network-gateway', namespace: ISTIO_NAMESPACE },
    spec: {
      selector: { istio: 'eastwestgateway' },
      servers: [
        {
          port: { number: 15443, name: 'tls', protocol: 'TLS' },
          tls: { mode: 'AUTO_PASSTHROUGH' },
          hosts: ['*.local'],
        },
      ],
    },
  };
}

export function istiodExposure(): object[] {
  return [
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'Gateway',
      metadata: { name: 'istiod-gateway', namespace: ISTIO_NAMESPACE },
      spec: {
        selector: { istio: 'eastwestgateway' },
        servers: [
          { port: { name: 'tls-istiod', number: 15012, protocol: 'tls' }, tls: { mode: 'PASSTHROUGH' }, hosts: ['*'] },
          {
            port: { name: 'tls-istiodwebhook', number: 15017, protocol: 'tls' },
            tls: { mode: 'PASSTHROUGH' },
            hosts: ['*'],
          },
        ],
      },
    },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'istiod-vs', namespace: ISTIO_NAMESPACE },
      spec: {
        hosts: ['*'],
        gateways: ['istiod-gateway'],
        tls: [
          {
            match: [{ port: 15012, sniHosts: ['*'] }],
            route: [{ destination: { host: 'istiod.istio-system.svc.cluster.local', port: { number: 15012 } } }],
          },
          {
            match: [{ port: 15017, sniHosts: ['*'] }],
            route: [{ destination: { host: 'istiod.istio-system.svc.cluster.local', port: { number: 443 } } }],
          },
        ],
      },
    },
  ];
}

export const READER_SERVICE_ACCOUNT = 'istio-reader-service-account';
export const READER_CLUSTER_ROLE = 'istio-reader-clusterrole-istio-system';

export const remoteSecretName = (source: string) => `istio-remote-secret-${source}`;

/** The kubeconfig inside a remote secret: named after the source cluster, authenticating with a reader token. */
export function remoteKubeconfig(source: string, server: string, caData: string, token: string): string {
  return YAML.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: source, cluster: { server, 'certificate-authority-data': caData } }],
    users: [{ name: source, user: { token } }],
    contexts: [{ name: source, context: { cluster: source, user: source } }],
    'current-context': source,
    preferences: {},
  });
}

/** The name of a revision's istiod Deployment (and its own Service): `istiod` or `istiod-<revision>`. */
export const istiodDeployment = (revision: string | undefined) => (revision ? `istiod-${revision}` : 'istiod');
