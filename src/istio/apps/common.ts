// What every sample app is (the SampleApp contract a mesh deploys and verifies through) and
// builders for the few Kubernetes and Istio objects the apps are made of, so each app's file
// says only what is particular to it. Pure data, no I/O: safe anywhere, workflow code included.

export type SampleName = 'helloworld' | 'echo' | 'online-boutique' | 'caller-callee';

export interface TrafficProbe {
  /** cluster whose client pod runs the command */
  fromCluster: string;
  namespace: string;
  /** label selector of the client pod, e.g. 'app=curl' */
  podSelector: string;
  container: string;
  /** argv run in the container once per request, e.g. ['curl','-sS','helloworld.sample:5000/hello'] */
  command: string[];
  /** cluster name -> a regex source string that matches the response body when that cluster answered */
  answers: Record<string, string>;
  /**
   * A regex source whose first group is the answering pod's name, where the body names it: which
   * cluster answered is then the one that runs that pod (two clusters may run the same version).
   */
  instance?: string;
}

export interface IngressProbe {
  cluster: string;
  path: string;
  /** a regex source the body must match */
  expect: string;
}

export interface SampleApp {
  name: SampleName;
  /** the component names a placement may list; isComponent is the authority (helloworld accepts more) */
  components: string[];
  isComponent(name: string): boolean;
  /** default placement for the given clusters (in order) */
  defaultPlacement(clusters: string[]): Record<string, string[]>;
  /** every object one cluster gets, given its name and the whole placement (cluster -> components) */
  manifests(cluster: string, placement: Record<string, string[]>): object[];
  /** what a traffic check should do on clusters with real pods */
  probes(placement: Record<string, string[]>): { exec: TrafficProbe[]; ingress: IngressProbe[] };
}

// Images are pinned so that a mesh brought up today and one brought up next month run the same
// code. Both are Docker Hub tags: curl 8.11.1 (the December 2024 release) and http-echo 1.0.
export const CURL_IMAGE = 'docker.io/curlimages/curl:8.11.1';
export const HTTP_ECHO_IMAGE = 'docker.io/hashicorp/http-echo:1.0';

type Labels = Record<string, string>;

/** Requests only, no limits: enough for the scheduler to spread pods, nothing that could OOM-kill a demo. */
const SMALL = { cpu: '20m', memory: '32Mi' };

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: Record<string, string>;
  containerPort?: number;
  requests?: { cpu: string; memory: string };
}

export function namespace(name: string, injected: boolean): object {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { 'istio-injection': injected ? 'enabled' : 'disabled' } },
  };
}

export function serviceAccount(ns: string, name: string): object {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns } };
}

/** One replica of one container; the pod labels are the selector, so the two cannot drift apart. */
export function deployment(
  ns: string,
  name: string,
  labels: Labels,
  c: Container,
  serviceAccountName?: string,
): object {
  const container = {
    name: c.name,
    image: c.image,
    ...(c.command && { command: c.command }),
    ...(c.args && { args: c.args }),
    ...(c.env && Object.keys(c.env).length
      ? { env: Object.entries(c.env).map(([envName, value]) => ({ name: envName, value })) }
      : {}),
    ...(c.containerPort !== undefined && { ports: [{ containerPort: c.containerPort }] }),
    resources: { requests: c.requests ?? SMALL },
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns, labels },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: { ...(serviceAccountName && { serviceAccountName }), containers: [container] },
      },
    },
  };
}

/**
 * A ClusterIP Service. The port name matters: Istio picks the protocol from its prefix
 * (http, grpc, tcp-), so every port is named.
 */
export function service(
  ns: string,
  name: string,
  selector: Labels,
  port: { name: string; port: number; targetPort?: number },
): object {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns, labels: { ...selector, service: name } },
    spec: { type: 'ClusterIP', selector, ports: [port] },
  };
}

export const CURL_SELECTOR = 'app=curl';

/** A client pod that only sleeps: traffic probes exec curl in its `curl` container. */
export function curlClient(ns: string): object[] {
  return [
    serviceAccount(ns, 'curl'),
    deployment(
      ns,
      'curl',
      { app: 'curl' },
      { name: 'curl', image: CURL_IMAGE, command: ['/bin/sleep', 'infinity'] },
      'curl',
    ),
  ];
}

interface IngressRoute {
  prefix: string;
  /** fully qualified Service host */
  host: string;
  port: number;
  /** the backend's own path, when it differs from the prefix */
  rewrite?: string;
}

/**
 * An entry through the cluster's Istio ingress gateway (the default profile's, labelled
 * istio=ingressgateway): a Gateway for port 80, any host, and a VirtualService bound to it.
 */
export function ingress(ns: string, gateway: string, virtualService: string, routes: IngressRoute[]): object[] {
  return [
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'Gateway',
      metadata: { name: gateway, namespace: ns },
      spec: {
        selector: { istio: 'ingressgateway' },
        servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }],
      },
    },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: virtualService, namespace: ns },
      spec: {
        hosts: ['*'],
        gateways: [gateway],
        http: routes.map((r) => ({
          match: [{ uri: { prefix: r.prefix } }],
          ...(r.rewrite && { rewrite: { uri: r.rewrite } }),
          route: [{ destination: { host: r.host, port: { number: r.port } } }],
        })),
      },
    },
  ];
}

/**
 * The components placed in one cluster. An unknown name is an error rather than skipped: a
 * typo in a placement would otherwise deploy less than asked, silently.
 */
export function componentsIn(
  app: Pick<SampleApp, 'name' | 'isComponent'>,
  cluster: string,
  placement: Record<string, string[]>,
): string[] {
  const placed = placement[cluster] ?? [];
  const unknown = placed.filter((c) => !app.isComponent(c));
  if (unknown.length)
    throw new Error(`${app.name}: unknown component(s) ${unknown.join(', ')} placed in cluster ${cluster}`);
  return placed;
}

/** Clusters that run at least one component (those with an empty list get nothing). */
export function runningClusters(placement: Record<string, string[]>): string[] {
  return Object.keys(placement).filter((c) => placement[c].length > 0);
}

export function clustersWith(placement: Record<string, string[]>, component: string): string[] {
  return Object.keys(placement).filter((c) => placement[c].includes(component));
}

export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * A regex source matching a body that is exactly `text` (servers end it with a newline). Anchored
 * so that the answer of cluster "c1" is not mistaken for that of "c10".
 */
export function wholeBody(text: string): string {
  return `^${escapeRegex(text)}\\s*$`;
}

/** A regex source matching any of the texts, alone. */
export function anyWholeBody(texts: string[]): string {
  return `^(${texts.map(escapeRegex).join('|')})\\s*$`;
}
