// The helloworld sample of Istio's multicluster verification guide, as our own manifests with
// the public images: Service helloworld (port 5000) in every cluster that runs a version, the
// versions placed per cluster, and a curl client to call it from.
export const SAMPLE_NAMESPACE = 'sample';

export function helloworld(versions: string[]): object[] {
  const labels = { app: 'helloworld' };
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: SAMPLE_NAMESPACE, labels: { 'istio-injection': 'enabled' } } },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'helloworld', namespace: SAMPLE_NAMESPACE, labels: { ...labels, service: 'helloworld' } },
      spec: { ports: [{ port: 5000, name: 'http' }], selector: labels },
    },
    ...versions.map((version) => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: `helloworld-${version}`, namespace: SAMPLE_NAMESPACE, labels: { ...labels, version } },
      spec: {
        replicas: 1,
        selector: { matchLabels: { ...labels, version } },
        template: {
          metadata: { labels: { ...labels, version } },
          spec: {
            containers: [{
              name: 'helloworld',
              image: `docker.io/istio/examples-helloworld-${version}:1.0`,
              resources: { requests: { cpu: '100m' } },
              ports: [{ containerPort: 5000 }],
            }],
          },
        },
      },
    })),
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'curl', namespace: SAMPLE_NAMESPACE } },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'curl', namespace: SAMPLE_NAMESPACE },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'curl' } },
        template: {
          metadata: { labels: { app: 'curl' } },
          spec: {
            serviceAccountName: 'curl',
            containers: [{ name: 'curl', image: 'curlimages/curl', command: ['/bin/sleep', 'infinity'] }],
          },
        },
      },
    },
  ];
}

export function deploymentNames(objects: object[]): string[] {
  return objects.filter((o) => (o as { kind: string }).kind === 'Deployment').map((o) => (o as { metadata: { name: string } }).metadata.name);
}
