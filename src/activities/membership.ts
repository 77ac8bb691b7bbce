// A cluster leaving the mesh: after its remote secrets are gone from the other primaries, every
// remaining istiod must forget it (istio/istio#36365: a destroyed cluster's endpoints stay
// "healthy"). Asked of the istiods meshflow runs (local primaries) through their debug and xDS
// interfaces: /debug/clusterz no longer lists the cluster, and the endpoints istiod hands a sidecar
// for every sample service hold none of its pods and not its network's gateway.
import * as k8s from '@kubernetes/client-node';
import { loadBalancerAddress } from '../adapters/kube';
import { EASTWEST_SERVICE, ISTIO_NAMESPACE } from '../istio/manifests';
import { fetchEndpoints, outboundCluster } from '../istio/xds';
import type { ForgetOutcome, ForgetRequest } from '../steps/contract';
import { type ActivityDeps, accessAll, kubeOf } from './deps';
import { sampleLayout } from '../checks/sample-layout';
import { runStep } from './step';

/** How long istiods get to forget a cluster before the removal says they did not. */
const FORGET_DEADLINE_MS = 5 * 60_000;
const POLL_MS = 500;

export function membershipActivities(deps: ActivityDeps) {
  return {
    awaitClusterForgotten: async (req: ForgetRequest): Promise<ForgetOutcome> => {
      let outcome: ForgetOutcome | undefined;
      await runStep(async (ctx) => {
        const started = Date.now();
        const { spec, cluster } = req;
        const leaving = spec.clusters.find((c) => c.name === cluster);
        const askable = spec.clusters.filter((c) => c.role === 'primary' && c.name !== cluster);
        const access = await accessAll(deps, spec);
        const istiods = askable.flatMap((p) => {
          const istiod = access(p.name).istiod;
          return istiod?.running ? [{ primary: p, istiod }] : [];
        });
        const unasked = askable.filter((p) => !istiods.some((i) => i.primary === p));
        const layout = sampleLayout({ ...spec, clusters: spec.clusters });
        // What the leaving cluster put into the mesh: its network's gateway, and its sample pods.
        const addresses = new Set<string>();
        try {
          const k = await kubeOf(deps, spec, cluster, ctx.signal);
          const svc = await k.core.readNamespacedService({ name: EASTWEST_SERVICE, namespace: ISTIO_NAMESPACE });
          const lb = loadBalancerAddress(svc);
          if (lb) addresses.add(`${lb}:15443`);
        } catch {
          // no east-west gateway (one network), or the cluster no longer answers: its clusterz entry still tells
        }
        for (const svc of layout.services) {
          try {
            const k = await kubeOf(deps, spec, cluster, ctx.signal);
            const slices = await k.config.makeApiClient(k8s.DiscoveryV1Api).listNamespacedEndpointSlice({
              namespace: svc.namespace,
              labelSelector: `kubernetes.io/service-name=${svc.name}`,
            });
            for (const s of slices.items)
              for (const e of s.endpoints ?? [])
                for (const a of e.addresses ?? []) addresses.add(`${a}:${s.ports?.[0]?.port ?? svc.port}`);
          } catch {
            // as above
          }
        }
        const names = layout.services.map((s) => outboundCluster(`${s.name}.${s.namespace}.svc.cluster.local`, s.port));
        const stillKnown = async (): Promise<string[]> => {
          const known: string[] = [];
          for (const { primary, istiod } of istiods) {
            const r = await fetch(`${istiod.debug}/debug/clusterz`, { signal: AbortSignal.timeout(10_000) });
            const clusterz = (await r.json()) as Array<{ id: string }>;
            if (clusterz.some((e) => e.id === cluster)) known.push(`${primary.name} lists it in /debug/clusterz`);
            if (!names.length || !addresses.size) continue;
            const got = await fetchEndpoints(
              istiod.xds,
              {
                clusterId: primary.name,
                network: primary.network,
                namespace: layout.services[0].namespace,
                istioVersion: spec.istio.version,
              },
              names,
              { signal: ctx.signal },
            );
            const stale = Object.values(got)
              .flat()
              .map((e) => `${e.address}:${e.port}`)
              .filter((a) => addresses.has(a));
            if (stale.length) known.push(`${primary.name} hands out ${stale.join(', ')}`);
          }
          return known;
        };
        let known = await stillKnown();
        while (known.length && Date.now() - started < FORGET_DEADLINE_MS) {
          ctx.heartbeat({ waitingFor: known });
          await new Promise((r) => setTimeout(r, POLL_MS));
          ctx.signal.throwIfAborted();
          known = await stillKnown();
        }
        const afterMs = Date.now() - started;
        const notAsked = unasked.length
          ? `; not asked: ${unasked.map((p) => p.name).join(', ')} (istiod runs in the cluster, ` +
            'its debug and xDS interfaces are served only inside its pod)'
          : '';
        const what = `${addresses.size} address(es) of ${cluster}${leaving ? ` (network ${leaving.network})` : ''}`;
        outcome = known.length
          ? {
              forgotten: false,
              afterMs,
              detail: `after ${Math.round(afterMs / 1000)} s ${known.join('; ')}${notAsked}`,
            }
          : {
              forgotten: istiods.length > 0,
              afterMs,
              detail: istiods.length
                ? `no istiod of ${istiods.map((i) => i.primary.name).join(', ')} knows ${cluster} or ` +
                  `${what}${notAsked}`
                : `no remaining istiod could be asked${notAsked}`,
            };
        return {};
      });
      return outcome!;
    },
  };
}
