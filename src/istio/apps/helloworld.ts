// The helloworld sample of Istio's multicluster verification guide, as our own manifests with
// the public images: Service helloworld (port 5000) in every cluster that runs a version, the
// versions placed per cluster, and a curl client to call it from. A reply names the version
// that served it, which tells which cluster answered when each cluster runs its own versions.
import {
  CURL_SELECTOR,
  type SampleApp,
  componentsIn,
  curlClient,
  deployment,
  escapeRegex,
  namespace,
  runningClusters,
  service,
} from './common';

export const SAMPLE_NAMESPACE = 'sample';

const labels = { app: 'helloworld' };

// Istio publishes images for v1 and v2 only. The program reads its version from SERVICE_VERSION
// (samples/helloworld/src/app.py), so any other version runs the v1 image with that variable set,
// exactly as Istio's gen-helloworld.sh does.
const PUBLISHED = ['v1', 'v2'];
const image = (version: string) =>
  `docker.io/istio/examples-helloworld-${PUBLISHED.includes(version) ? version : 'v1'}:1.0`;

function versionDeployment(version: string): object {
  return deployment(
    SAMPLE_NAMESPACE,
    `helloworld-${version}`,
    { ...labels, version },
    {
      name: 'helloworld',
      image: image(version),
      env: { SERVICE_VERSION: version },
      containerPort: 5000,
      // Each request spins the CPU on purpose (app.py), so it gets more than the other samples.
      requests: { cpu: '100m', memory: '64Mi' },
    },
  );
}

export const helloworldApp: SampleApp = {
  name: 'helloworld',
  // The versions with an image of their own; isComponent accepts any v<N> (see PUBLISHED).
  components: PUBLISHED,
  isComponent: (name) => /^v\d+$/.test(name),

  defaultPlacement: (clusters) => Object.fromEntries(clusters.map((c, i) => [c, [`v${i + 1}`]])),

  manifests(cluster, placement) {
    const versions = componentsIn(helloworldApp, cluster, placement);
    if (!versions.length) return [];
    return [
      namespace(SAMPLE_NAMESPACE, true),
      service(SAMPLE_NAMESPACE, 'helloworld', labels, { name: 'http', port: 5000 }),
      ...versions.map(versionDeployment),
      ...curlClient(SAMPLE_NAMESPACE),
    ];
  },

  probes(placement) {
    // The body is "Hello version: v1, instance: helloworld-v1-<pod>".
    const answers = Object.fromEntries(
      runningClusters(placement).map((c) => [
        c,
        `^Hello version: (${placement[c].map(escapeRegex).join('|')}), instance: `,
      ]),
    );
    const exec = runningClusters(placement).map((fromCluster) => ({
      fromCluster,
      namespace: SAMPLE_NAMESPACE,
      podSelector: CURL_SELECTOR,
      container: 'curl',
      command: ['curl', '-sS', `helloworld.${SAMPLE_NAMESPACE}:5000/hello`],
      answers,
      instance: ', instance: (\\S+)',
    }));
    return { exec, ingress: [] };
  },
};
