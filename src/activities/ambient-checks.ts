// The checks of an ambient mesh (istio.dataPlane: ambient), in place of the sidecar ones:
// - `ambient-workloads`: istiod's workload discovery as a ztunnel of each cluster receives it (Delta
//   xDS over the same port-forward as `discovery`): every sample pod of the cluster's own network
//   by its pod address, and every other network's endpoints folded into one workload whose network
//   gateway is that network's east-west Gateway (HBONE 15008). What ztunnel would dial, so it shows
//   whether traffic can cross networks: Gateway, network labels, remote secrets and
//   AMBIENT_ENABLE_MULTI_NETWORK all have to be right for it to pass;
// - `ambient-capture`: the sample's pods are in ambient mode: their namespace is labelled for it,
//   they carry no sidecar, and istio-cni has redirected them to a ready ztunnel on their node;
// - `eastwest-address` (in ./verify.ts) reads the east-west Gateway's programmed address.
import type * as k8s from '@kubernetes/client-node';
import {
  AMBIENT_EASTWEST_GATEWAY,
  DATAPLANE_MODE_LABEL,
  HBONE_PORT,
  REDIRECTION_ANNOTATION,
  notProgrammedReason,
  programmedAddress,
} from '../istio/ambient';
import { ISTIO_NAMESPACE, NETWORK_LABEL } from '../istio/manifests';
import { fetchWorkloads } from '../istio/workload-xds';
import type { ClusterSpec } from '../spec/schema';
import { type Call, type Verdict, fail, notFound, pass } from './checks';
import { type IstioCheckContext, type sampleLayout, clustersReadBy, withIstiod } from './istiod-reach';

type Layout = ReturnType<typeof sampleLayout>;

/** The ready endpoint addresses of a Service in one cluster (its EndpointSlices). */
async function readyEndpoints(ctx: IstioCheckContext, cluster: string, ns: string, name: string, call: Call) {
  const slices = await call(() =>
    ctx.api[cluster].discovery.listNamespacedEndpointSlice({
      namespace: ns,
      labelSelector: `kubernetes.io/service-name=${name}`,
    }),
  );
  return slices.items.flatMap((s) =>
    s.endpoints.filter((e) => e.conditions?.ready !== false).flatMap((e) => e.addresses),
  );
}

export async function ambientWorkloads(
  ctx: IstioCheckContext,
  c: ClusterSpec,
  layout: Layout,
  call: Call,
): Promise<Verdict> {
  const { spec } = ctx;
  const read = clustersReadBy(spec, c.name);
  // Each network's east-west Gateways, as its clusters' APIs show them (istiod picks one of a network's).
  const gatewaysOf = new Map<string, string[]>();
  for (const x of spec.clusters) {
    if (x.network === c.network) continue;
    const gw = await eastWestGateway(ctx, x.name, call);
    if (gw.address && gw.network === x.network)
      gatewaysOf.set(x.network, [...(gatewaysOf.get(x.network) ?? []), gw.address]);
  }
  // What each sample Service should look like to this cluster's ztunnel.
  const expected: Array<{ key: string; local: string[]; remote: Map<string, number> }> = [];
  for (const svc of layout.services) {
    const local: string[] = [];
    const remote = new Map<string, number>();
    for (const x of spec.clusters.filter((o) => read.includes(o.name) && layout.serving.has(o.name))) {
      const ips = await readyEndpoints(ctx, x.name, svc.namespace, svc.name, call);
      if (x.network === c.network) local.push(...ips);
      else if (ips.length) remote.set(x.network, (remote.get(x.network) ?? 0) + ips.length);
    }
    expected.push({ key: `${svc.namespace}/${svc.name}.${svc.namespace}.svc.cluster.local`, local, remote });
  }
  return withIstiod(ctx, c.name, call, async (istiod) => {
    const view = await istiod.through(() =>
      fetchWorkloads(
        istiod.xds,
        { clusterId: c.name, network: c.network, istioVersion: spec.istio.version },
        {
          signal: ctx.signal,
        },
      ),
    );
    const problems: string[] = [];
    const waypointProblems: string[] = [];
    const shown: string[] = [];
    for (const e of expected) {
      const holders = view.workloads.filter((w) => w.services.includes(e.key));
      const host = e.key.split('/')[1].replace(/\.svc\.cluster\.local$/, '');
      for (const ip of e.local) {
        if (!holders.some((w) => w.network === c.network && w.addresses.includes(ip)))
          problems.push(`${host}: local endpoint ${ip} is missing`);
      }
      const parts = [`${c.network} ${e.local.length} direct`];
      for (const [network, count] of e.remote) {
        const folded = holders.filter((w) => w.network === network && w.networkGateway);
        const direct = holders.filter((w) => w.network === network && !w.networkGateway && w.addresses.length);
        const gws = gatewaysOf.get(network) ?? [];
        if (!folded.length) {
          problems.push(
            `${host}: no workload stands for the ${count} endpoint(s) of ${network}` +
              (direct.length
                ? ` (${direct.length} sent by pod address, which ztunnel cannot reach across networks)`
                : '') +
              (gws.length ? '' : `; ${network} has no programmed east-west Gateway with its network label`),
          );
          continue;
        }
        const w = folded[0];
        const via = `${w.networkGateway!.address}:${w.networkGateway!.hbonePort}`;
        if (gws.length && !gws.includes(w.networkGateway!.address))
          problems.push(
            `${host}: ${network} is reached through ${via}, but its east-west Gateway is at ${gws.join(' or ')}`,
          );
        else if (w.networkGateway!.hbonePort !== HBONE_PORT)
          problems.push(
            `${host}: ${network} is reached on port ${w.networkGateway!.hbonePort}, not HBONE ${HBONE_PORT}`,
          );
        else if ((w.capacity ?? 1) !== count)
          problems.push(`${host}: ${network} stands for ${w.capacity ?? 1} endpoint(s), its clusters serve ${count}`);
        parts.push(`${network} ${count} via ${via}`);
      }
      const waypoint = spec.app.waypoint;
      if (waypoint) {
        const [ns, name] = [host.split('.')[1], host.split('.')[0]];
        const got = view.services.find((x) => x.name === name && x.namespace === ns)?.waypoint;
        const own = await call(() =>
          ctx.api[c.name].core.readNamespacedService({ name: waypoint, namespace: ns }).catch((err: unknown) => {
            if (notFound(err)) return undefined;
            throw err;
          }),
        );
        const want = [own?.spec?.clusterIP, `${waypoint}.${ns}.svc.cluster.local`].filter(Boolean);
        if (!got) waypointProblems.push(`${host}: no waypoint (the spec asks for ${waypoint})`);
        else if (!want.includes(got)) waypointProblems.push(`${host}: waypoint ${got} is not ${c.name}'s ${waypoint}`);
        else parts.push(`waypoint ${waypoint}`);
      }
      shown.push(`${host}: ${parts.join(', ')}`);
    }
    const who = `as a ztunnel of ${c.name} (${c.network}), istiod of ${c.name} answers`;
    const all = [...problems, ...waypointProblems];
    if (all.length) {
      const waypointHint =
        `a Service's waypoint is the Gateway (class istio-waypoint) its namespace's istio.io/use-waypoint label names, ` +
        `of the same name in every cluster: \`kubectl -n <namespace> get gateway ${spec.app.waypoint}\` in ${c.name}`;
      if (!problems.length) return fail(`${who}: ${all.slice(0, 5).join('; ')}`, waypointHint);
      return fail(
        `${who}: ${all.slice(0, 5).join('; ')}${all.length > 5 ? `; and ${all.length - 5} more` : ''}`,
        (waypointProblems.length ? `${waypointHint}; ` : '') +
          'another network is reached through its east-west Gateway (class istio-east-west) labelled with that ' +
          'network: check `kubectl -n istio-system get gateway istio-eastwest --show-labels` in every cluster, the ' +
          "topology.istio.io/network label of istio-system, the remote secrets, istiod's " +
          `AMBIENT_ENABLE_MULTI_NETWORK=true, and that the Services are labelled istio.io/global=true; see ` +
          istiod.see('/debug/ambientz'),
      );
    }
    return pass(`${who} ${shown.join('; ')}`);
  });
}

export async function ambientCapture(
  ctx: IstioCheckContext,
  c: ClusterSpec,
  namespaces: string[],
  call: Call,
): Promise<Verdict> {
  const core = ctx.api[c.name].core;
  const bad: string[] = [];
  const ztunnels = (
    await call(() => core.listNamespacedPod({ namespace: ISTIO_NAMESPACE, labelSelector: 'app=ztunnel' }))
  ).items;
  const readyOn = new Set(
    ztunnels
      .filter((z) => z.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True'))
      .map((z) => z.spec?.nodeName),
  );
  let pods = 0;
  for (const ns of namespaces) {
    const namespace = await call(() => core.readNamespace({ name: ns }));
    if (namespace.metadata?.labels?.[DATAPLANE_MODE_LABEL] !== 'ambient') {
      bad.push(`namespace ${ns} is not labelled ${DATAPLANE_MODE_LABEL}=ambient`);
      continue;
    }
    const list = await call(() => core.listNamespacedPod({ namespace: ns }));
    // Pods that opt out (a waypoint's own Envoy does) are not the app's.
    const app = list.items.filter(
      (p) => !p.metadata?.deletionTimestamp && p.metadata?.labels?.[DATAPLANE_MODE_LABEL] !== 'none',
    );
    for (const pod of app) {
      pods++;
      const name = `${ns}/${pod.metadata?.name}`;
      if (pod.spec?.containers.some((x) => x.name === 'istio-proxy')) bad.push(`${name} carries a sidecar`);
      else if (!readyOn.has(pod.spec?.nodeName)) bad.push(`${name}: no ready ztunnel on node ${pod.spec?.nodeName}`);
      else if (pod.metadata?.annotations?.[REDIRECTION_ANNOTATION] !== 'enabled')
        bad.push(`${name} is not redirected to ztunnel (no ${REDIRECTION_ANNOTATION}=enabled)`);
    }
  }
  if (bad.length) {
    return fail(
      bad.slice(0, 5).join('; ') + (bad.length > 5 ? `; and ${bad.length - 5} more` : ''),
      `istio-cni redirects the pods of namespaces labelled ${DATAPLANE_MODE_LABEL}=ambient to the ztunnel of their ` +
        `node: check \`kubectl -n ${ISTIO_NAMESPACE} get pods -l app=ztunnel -o wide\` and the istio-cni-node pods' ` +
        'logs; a pod created with a sidecar keeps it until its Deployment is restarted',
    );
  }
  if (!pods)
    return fail(`no sample pods in ${namespaces.join(', ')}`, `see \`kubectl -n ${namespaces[0]} get events\``);
  return pass(`${pods} sample pod(s) in ambient mode, redirected to the ztunnel of their node, no sidecar`);
}

/** A cluster's ambient east-west Gateway as its API shows it: its programmed address and network label. */
export async function eastWestGateway(
  ctx: Pick<IstioCheckContext, 'api'>,
  cluster: string,
  call: Call,
): Promise<{ address?: string; network?: string; why?: string }> {
  let gw: k8s.KubernetesObject;
  try {
    gw = (await call(() =>
      ctx.api[cluster].custom.getNamespacedCustomObject({
        group: 'gateway.networking.k8s.io',
        version: 'v1',
        namespace: ISTIO_NAMESPACE,
        plural: 'gateways',
        name: AMBIENT_EASTWEST_GATEWAY,
      }),
    )) as k8s.KubernetesObject;
  } catch (err) {
    if (notFound(err)) return { why: `Gateway ${ISTIO_NAMESPACE}/${AMBIENT_EASTWEST_GATEWAY} does not exist` };
    throw err;
  }
  const address = programmedAddress(gw);
  return {
    address,
    network: gw.metadata?.labels?.[NETWORK_LABEL],
    ...(address ? {} : { why: notProgrammedReason(gw) ?? 'istiod has not programmed it' }),
  };
}
