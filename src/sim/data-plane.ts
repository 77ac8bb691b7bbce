// SIMULATED DATA PLANE. On local clusters real controllers roll out Deployments and kwok plays the
// node their pods run on, but no cloud gives LoadBalancer Services an address. This module stands
// in for that, and only for local clusters (and the GKE emulator's):
// - it gives each LoadBalancer Service an ingress address from the cluster's own pool,
//   198.18.<cluster index>.0/24 (the benchmarking range: no traffic is ever sent there). It writes
//   only the status subresource, as a cloud controller does;
// - kwok stands in for the kubelet: it serves the kubelet API (port-forward, exec) for the pods it
//   plays, as kwok PortForward objects tell it. No istiod container runs in an istiod pod here;
//   meshflow runs that revision's istiod beside the cluster. So for each istiod pod this module
//   keeps a PortForward that leads the pod's ports to that process: a port-forward through the API
//   server (how istioctl and meshflow's checks reach an in-cluster istiod) ends at a real istiod.
// - No istio-cni runs on kwok's nodes either. For ambient meshes this module does what its node
//   agent does to the API: a pod of a namespace in ambient mode, on a node whose ztunnel is ready,
//   gets the `ambient.istio.io/redirection: enabled` annotation (its traffic is redirected to
//   ztunnel), and loses it when it leaves ambient mode. istiod reads that annotation to tell
//   ztunnels the pod speaks HBONE. No traffic is redirected: no packets flow here.
// Everything else in meshflow sees the same API objects a real cluster shows and knows nothing of
// this module.
import fs from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { DATAPLANE_MODE_LABEL, REDIRECTION_ANNOTATION } from '../istio/ambient';
import { ISTIO_NAMESPACE, istiodDeployment } from '../istio/manifests';
import { SharedTlsKubeConfig } from '../util/kube-config';
import { serveExecDouble } from './exec-double';

export interface SimulatedCluster {
  name: string;
  index: number;
  kubeconfig: string;
}

export interface SimulatedDataPlane {
  stop(): Promise<void>;
}

export function loadBalancerPool(index: number): string {
  return `198.18.${index % 256}.0/24`;
}

export async function startSimulatedDataPlane(
  clusters: SimulatedCluster[],
  log: (line: string) => void = () => undefined,
): Promise<SimulatedDataPlane> {
  const state = { stopped: false };
  const informers = (await Promise.all(clusters.map((c) => simulateCluster(c, state, log)))).flat();
  return {
    async stop() {
      state.stopped = true;
      await Promise.all(informers.map((i) => i.stop()));
    },
  };
}

async function simulateCluster(
  cluster: SimulatedCluster,
  state: { stopped: boolean },
  log: (line: string) => void,
): Promise<Array<{ stop(): Promise<void> | void }>> {
  const kc = new SharedTlsKubeConfig();
  kc.loadFromFile(cluster.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const assigned = new Map<string, string>(); // "ns/name" -> address, so an address is never handed out twice

  const services = k8s.makeInformer(kc, '/api/v1/services', () => core.listServiceForAllNamespaces());

  const balance = async (svc: k8s.V1Service) => {
    const key = `${svc.metadata?.namespace}/${svc.metadata?.name}`;
    if (svc.spec?.type !== 'LoadBalancer') return;
    const current = svc.status?.loadBalancer?.ingress?.[0]?.ip;
    if (current) {
      assigned.set(key, current);
      return;
    }
    const ip = nextAddress(cluster.index, new Set(assigned.values()));
    assigned.set(key, ip);
    svc.status = { ...(svc.status ?? {}), loadBalancer: { ingress: [{ ip, ipMode: 'VIP' }] } };
    await ignoreConflicts(
      core.replaceNamespacedServiceStatus({
        name: svc.metadata!.name!,
        namespace: svc.metadata!.namespace!,
        body: svc,
      }),
    );
    log(`[sim ${cluster.name}] service ${key} load balancer ${ip}`);
  };

  const guard =
    <T>(fn: (o: T) => Promise<void>) =>
    (o: T) => {
      fn(o).catch((err: unknown) => log(`[sim ${cluster.name}] ${err instanceof Error ? err.message : String(err)}`));
    };
  services.on('add', guard(balance));
  services.on('update', guard(balance));
  services.on('delete', (svc) => assigned.delete(`${svc.metadata?.namespace}/${svc.metadata?.name}`));

  const istiods = k8s.makeInformer(
    kc,
    `/api/v1/namespaces/${ISTIO_NAMESPACE}/pods`,
    () => core.listNamespacedPod({ namespace: ISTIO_NAMESPACE, labelSelector: 'app=istiod' }),
    'app=istiod',
  );
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  // pod name -> the ports file it leads to and the forwards last written for it.
  const forwarded = new Map<string, { file: string; applied?: string }>();
  const forward = async (pod: k8s.V1Pod) => {
    const name = pod.metadata!.name!;
    const rev = pod.metadata?.labels?.['istio.io/rev'];
    const file = path.join(
      path.dirname(cluster.kubeconfig),
      // The ports file of the istiod meshflow runs for that revision, named as its Deployment (local/clusters.ts).
      `${istiodDeployment(!rev || rev === 'default' ? undefined : rev)}.json`,
    );
    const known = forwarded.get(name) ?? { file };
    forwarded.set(name, known);
    if (!fs.existsSync(file)) {
      // Not an istiod meshflow runs (yet): no forward, so a port-forward to it fails as it would.
      if (known.applied !== '') {
        log(
          `[sim ${cluster.name}] istiod pod ${name}: no istiod of revision ${rev ?? 'default'} runs beside the cluster`,
        );
      }
      known.applied = '';
      return;
    }
    const ports = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, number>;
    const body = istiodPortForward(name, ports) as { spec: unknown };
    const wanted = JSON.stringify(body.spec);
    if (known.applied === wanted) return;
    try {
      await custom.createNamespacedCustomObject({ ...KWOK_PORT_FORWARDS, namespace: ISTIO_NAMESPACE, body });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
      // istiod started again on other ports (a restart, a new revision's process): lead the pod there.
      await custom.patchNamespacedCustomObject(
        { ...KWOK_PORT_FORWARDS, namespace: ISTIO_NAMESPACE, name, body: { spec: body.spec } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
    }
    known.applied = wanted;
    log(`[sim ${cluster.name}] istiod pod ${name}: port-forwards lead to the istiod of revision ${rev ?? 'default'}`);
  };
  const unforward = async (pod: k8s.V1Pod) => {
    const name = pod.metadata!.name!;
    forwarded.delete(name);
    try {
      await custom.deleteNamespacedCustomObject({ ...KWOK_PORT_FORWARDS, namespace: ISTIO_NAMESPACE, name });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
    }
  };
  // The istiod beside the cluster may start again on other ports: follow its ports file.
  const follow = setInterval(() => {
    for (const pod of istiods.list(ISTIO_NAMESPACE)) guard(forward)(pod);
  }, 1000);
  istiods.on('add', guard(forward));
  istiods.on('update', guard(forward));
  istiods.on('delete', guard(unforward));

  const double = await serveExecDouble(cluster.kubeconfig);
  const informers = [services, istiods, ...ambientCapture(kc, core, guard, log, cluster.name)] as Array<
    k8s.Informer<k8s.KubernetesObject>
  >;
  // Informers restart their watch after errors; without an error handler they stop.
  for (const inf of informers) {
    inf.on('error', () => {
      if (!state.stopped) setTimeout(() => !state.stopped && void inf.start().catch(() => undefined), 1000);
    });
  }
  await Promise.all(informers.map((i) => i.start()));
  return [...informers, { stop: async () => void double.close() }, { stop: () => clearInterval(follow) }];
}

/**
 * istio-cni's part for ambient (see the header): keeps the redirection annotation on exactly the pods
 * that are in ambient mode (namespace label istio.io/dataplane-mode=ambient, no pod label opting
 * out, no sidecar) and whose node runs a ready ztunnel.
 */
function ambientCapture(
  kc: k8s.KubeConfig,
  core: k8s.CoreV1Api,
  guard: <T>(fn: (o: T) => Promise<void>) => (o: T) => void,
  log: (line: string) => void,
  cluster: string,
): Array<k8s.Informer<k8s.V1Pod> | k8s.Informer<k8s.V1Namespace>> {
  const pods = k8s.makeInformer(kc, '/api/v1/pods', () => core.listPodForAllNamespaces());
  const namespaces = k8s.makeInformer(kc, '/api/v1/namespaces', () => core.listNamespace());
  const ready = (p: k8s.V1Pod) =>
    !p.metadata?.deletionTimestamp && !!p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  const ztunnelOn = (node: string | undefined) =>
    pods
      .list(ISTIO_NAMESPACE)
      .some((z) => z.metadata?.labels?.app === 'ztunnel' && z.spec?.nodeName === node && ready(z));
  const reconcile = async (pod: k8s.V1Pod) => {
    const ns = pod.metadata?.namespace ?? '';
    const mode = namespaces.get(ns)?.metadata?.labels?.[DATAPLANE_MODE_LABEL];
    const want =
      mode === 'ambient' &&
      pod.metadata?.labels?.[DATAPLANE_MODE_LABEL] !== 'none' &&
      !pod.spec?.hostNetwork &&
      !pod.spec?.containers.some((c) => c.name === 'istio-proxy') &&
      pod.status?.phase === 'Running' &&
      ztunnelOn(pod.spec?.nodeName);
    const has = pod.metadata?.annotations?.[REDIRECTION_ANNOTATION] === 'enabled';
    if (want === has || pod.metadata?.deletionTimestamp) return;
    await ignoreMissing(
      core.patchNamespacedPod(
        {
          name: pod.metadata!.name!,
          namespace: ns,
          body: { metadata: { annotations: { [REDIRECTION_ANNOTATION]: want ? 'enabled' : null } } },
        },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      ),
    );
    log(`[sim ${cluster}] pod ${ns}/${pod.metadata!.name}: ${want ? 'captured by' : 'released from'} ztunnel`);
  };
  const onPod = guard(async (pod: k8s.V1Pod) => {
    await reconcile(pod);
    // A ztunnel that becomes ready (or goes) changes every pod of its node.
    if (pod.metadata?.labels?.app === 'ztunnel') {
      await Promise.all(
        pods
          .list()
          .filter((p) => p.spec?.nodeName === pod.spec?.nodeName)
          .map(reconcile),
      );
    }
  });
  pods.on('add', onPod);
  pods.on('update', onPod);
  pods.on('delete', onPod);
  const onNamespace = guard(async (ns: k8s.V1Namespace) => {
    await Promise.all(pods.list(ns.metadata?.name).map(reconcile));
  });
  namespaces.on('add', onNamespace);
  namespaces.on('update', onNamespace);
  return [namespaces, pods];
}

async function ignoreMissing(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if ((err as { code?: number }).code !== 404) throw err;
  }
}

const KWOK_PORT_FORWARDS = { group: 'kwok.x-k8s.io', version: 'v1alpha1', plural: 'portforwards' };

/**
 * istiod's container ports, as its pod declares them, led to the ports of the istiod meshflow runs
 * (its `<component>.json`): 8080 debug HTTP, 15010 plaintext xDS, 15012 TLS xDS and CA, 15014
 * monitoring, 15017 webhooks.
 */
export function istiodPortForward(pod: string, ports: Record<string, number>): object {
  const to = {
    8080: ports.http,
    15010: ports.grpc,
    15012: ports.secureGrpc,
    15014: ports.monitoring,
    15017: ports.https,
  };
  return {
    apiVersion: 'kwok.x-k8s.io/v1alpha1',
    kind: 'PortForward',
    metadata: { name: pod, namespace: ISTIO_NAMESPACE, labels: { 'app.kubernetes.io/managed-by': 'meshflow-sim' } },
    spec: {
      forwards: Object.entries(to).map(([from, port]) => ({
        ports: [Number(from)],
        target: { address: '127.0.0.1', port },
      })),
    },
  };
}

function nextAddress(index: number, used: Set<string>): string {
  for (let host = 10; host < 255; host++) {
    const ip = `198.18.${index % 256}.${host}`;
    if (!used.has(ip)) return ip;
  }
  throw new Error(`load balancer pool ${loadBalancerPool(index)} is exhausted`);
}

async function ignoreConflicts(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    // Another writer changed the object since we read it; its update event brings us back.
    if ((err as { code?: number }).code !== 409) throw err;
  }
}
