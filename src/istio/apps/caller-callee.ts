// Two services, the caller finding the callee the way many real programs find their
// dependencies: a URL in an environment variable. Placed in different clusters, the caller's
// plain cluster-local DNS name works only because the mesh carries the call across.
import {
  CURL_IMAGE,
  HTTP_ECHO_IMAGE,
  type SampleApp,
  clustersWith,
  componentsIn,
  deployment,
  namespace,
  service,
  wholeBody,
} from './common';

const NS = 'calls';
const PORT = 5678;
const COMPONENTS = ['caller', 'callee'];
const CALLEE_URL = `http://callee.${NS}.svc.cluster.local:${PORT}/`;

const text = (cluster: string) => `callee in ${cluster}`;

export const callerCalleeApp: SampleApp = {
  name: 'caller-callee',
  components: COMPONENTS,
  isComponent: (name) => COMPONENTS.includes(name),

  defaultPlacement(clusters) {
    if (clusters.length === 0) return {};
    if (clusters.length === 1) return { [clusters[0]]: [...COMPONENTS] };
    return { [clusters[0]]: ['caller'], [clusters[1]]: ['callee'] };
  },

  manifests(cluster, placement) {
    const placed = componentsIn(callerCalleeApp, cluster, placement);
    if (!placed.length) return [];
    return [
      namespace(NS, true),
      // Wherever anything runs, so the caller's name resolves in its own cluster.
      service(NS, 'callee', { app: 'callee' }, { name: 'http', port: PORT }),
      ...(placed.includes('callee')
        ? [
            deployment(
              NS,
              'callee',
              { app: 'callee' },
              {
                name: 'callee',
                image: HTTP_ECHO_IMAGE,
                args: [`-listen=:${PORT}`, `-text=${text(cluster)}`],
                containerPort: PORT,
              },
            ),
          ]
        : []),
      ...(placed.includes('caller')
        ? [
            deployment(
              NS,
              'caller',
              { app: 'caller' },
              {
                name: 'caller',
                image: CURL_IMAGE,
                env: { CALLEE_URL },
                // Calls on its own too, so the mesh's telemetry shows the edge without a probe running.
                command: ['sh', '-c', 'while true; do curl -sS "$CALLEE_URL"; sleep 10; done'],
              },
            ),
          ]
        : []),
    ];
  },

  probes(placement) {
    const answers = Object.fromEntries(clustersWith(placement, 'callee').map((c) => [c, wholeBody(text(c))]));
    // With no callee anywhere a call cannot be answered: nothing to check.
    const exec = Object.keys(answers).length
      ? clustersWith(placement, 'caller').map((fromCluster) => ({
          fromCluster,
          namespace: NS,
          podSelector: 'app=caller',
          container: 'caller',
          // Through the same variable the caller uses, so a wrong URL shows here too.
          command: ['sh', '-c', 'curl -sS "$CALLEE_URL"'],
          answers,
        }))
      : [];
    return { exec, ingress: [] };
  },
};
