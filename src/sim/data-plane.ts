// SIMULATED DATA PLANE. On local clusters real controllers roll out Deployments and kwok plays the
// node their pods run on, but no cloud gives LoadBalancer Services an address. This module stands
// in for that one thing, and only for local clusters: it gives each LoadBalancer Service an ingress
// address from the cluster's own pool, 198.18.<cluster index>.0/24 (the benchmarking range: no
// traffic is ever sent there). It writes only the status subresource, as a cloud controller does,
// so everything else in meshflow sees the same API objects a real cluster shows and knows nothing
// of this module.
import * as k8s from '@kubernetes/client-node';
import { SharedTlsKubeConfig } from '../adapters/kube-config';

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
): Promise<Array<k8s.Informer<k8s.KubernetesObject>>> {
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
  // Informers restart their watch after errors; without an error handler they stop.
  for (const inf of [services] as Array<k8s.Informer<k8s.KubernetesObject>>) {
    inf.on('error', () => {
      if (!state.stopped) setTimeout(() => !state.stopped && void inf.start().catch(() => undefined), 1000);
    });
  }
  await services.start();
  return [services] as Array<k8s.Informer<k8s.KubernetesObject>>;
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
