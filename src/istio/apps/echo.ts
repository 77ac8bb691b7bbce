// An HTTP server that answers one line naming its cluster, in two flavours: `injected`, in
// namespace echo with sidecars (in the mesh, so any cluster's client may be answered by any
// cluster's pod), and `plain`, in echo-plain without sidecars (outside the mesh, reachable only
// in its own cluster). Each cluster's ingress gateway routes /echo/<flavour> to the flavours it
// runs, which checks the north-south path as well as the east-west one.
import {
  CURL_SELECTOR,
  HTTP_ECHO_IMAGE,
  type IngressProbe,
  type SampleApp,
  anyWholeBody,
  clustersWith,
  componentsIn,
  curlClient,
  deployment,
  ingress,
  namespace,
  runningClusters,
  service,
  wholeBody,
} from './common';

type Flavour = 'injected' | 'plain';
const FLAVOURS: Record<Flavour, { namespace: string; injected: boolean }> = {
  injected: { namespace: 'echo', injected: true },
  plain: { namespace: 'echo-plain', injected: false },
};
const COMPONENTS = Object.keys(FLAVOURS) as Flavour[];
// The client and the ingress route live with the injected flavour, whatever a cluster runs.
const HOME = FLAVOURS.injected.namespace;
const labels = { app: 'echo' };

const text = (cluster: string, flavour: Flavour) => `echo from ${cluster} ${flavour}`;
const host = (flavour: Flavour) => `echo.${FLAVOURS[flavour].namespace}.svc.cluster.local`;

const echoService = (flavour: Flavour) =>
  service(FLAVOURS[flavour].namespace, 'echo', labels, { name: 'http', port: 80, targetPort: 8080 });

function echoDeployment(cluster: string, flavour: Flavour): object {
  return deployment(FLAVOURS[flavour].namespace, 'echo', labels, {
    name: 'echo',
    image: HTTP_ECHO_IMAGE,
    args: ['-listen=:8080', `-text=${text(cluster, flavour)}`],
    containerPort: 8080,
  });
}

export const echoApp: SampleApp = {
  name: 'echo',
  components: COMPONENTS,
  isComponent: (name) => (COMPONENTS as string[]).includes(name),

  defaultPlacement: (clusters) => Object.fromEntries(clusters.map((c) => [c, [...COMPONENTS]])),

  manifests(cluster, placement) {
    const placed = componentsIn(echoApp, cluster, placement) as Flavour[];
    if (!placed.length) return [];
    const has = (f: Flavour) => placed.includes(f);
    return [
      namespace(HOME, true),
      ...(has('plain') ? [namespace(FLAVOURS.plain.namespace, false)] : []),
      // In every cluster that runs anything, so its client resolves echo.echo even where no
      // injected pod runs; the mesh then sends the request to another cluster's.
      echoService('injected'),
      ...(has('injected') ? [echoDeployment(cluster, 'injected')] : []),
      // Only where placed: without sidecars no other cluster could reach these pods anyway.
      ...(has('plain') ? [echoService('plain'), echoDeployment(cluster, 'plain')] : []),
      ...curlClient(HOME),
      ...ingress(
        HOME,
        'echo',
        'echo',
        placed.map((f) => ({ prefix: `/echo/${f}`, host: host(f), port: 80, rewrite: '/' })),
      ),
    ];
  },

  probes(placement) {
    const injected = clustersWith(placement, 'injected');
    const answers = Object.fromEntries(injected.map((c) => [c, wholeBody(text(c, 'injected'))]));
    // Without an injected pod anywhere no exec request can be answered: nothing to check.
    const exec = injected.length
      ? runningClusters(placement).map((fromCluster) => ({
          fromCluster,
          namespace: HOME,
          podSelector: CURL_SELECTOR,
          container: 'curl',
          command: ['curl', '-sS', `echo.${HOME}:80`],
          answers,
        }))
      : [];
    const ingressProbes: IngressProbe[] = runningClusters(placement).flatMap((cluster) =>
      (placement[cluster] as Flavour[]).map((f) => ({
        cluster,
        path: `/echo/${f}`,
        // The gateway is in the mesh too, so the injected route may be served by any cluster's pod.
        expect: f === 'injected' ? anyWholeBody(injected.map((c) => text(c, f))) : wholeBody(text(cluster, f)),
      })),
    );
    return { exec, ingress: ingressProbes };
  },
};
