// The checks of an ambient mesh (istio.dataPlane: ambient), in place of the sidecar ones:
// - `ambient-workloads`: istiod's workload discovery as a ztunnel of each cluster receives it (Delta
//   xDS over the same port-forward as `discovery`): every sample pod of the cluster's own network
//   by its pod address, and every other network's endpoints folded into one workload whose network
//   gateway is that network's east-west Gateway (HBONE 15008). What ztunnel would dial, so it shows
//   whether traffic can cross networks: Gateway, network labels, remote secrets and
//   AMBIENT_ENABLE_MULTI_NETWORK all have to be right for it to pass;
// - `ambient-capture`: the sample's pods are in ambient mode: their namespace is labelled for it,
//   they carry no sidecar, and istio-cni has redirected them to a ready ztunnel on their node;
// - `eastwest-address` (./control-plane.ts) reads the east-west Gateway's programmed address.
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
import { type WorkloadView, fetchWorkloads } from '../istio/workload-xds';
import type { ClusterSpec } from '../spec/schema';
import { type Call, type Verdict, fail, notFound, pass } from './result';
import type { CheckContext } from './context';
import { withIstiod } from './istiod-reach';
import { type SampleLayout, type SampleService, clustersReadBy } from './sample-layout';

type Layout = SampleLayout;

/** The ready endpoint addresses of a Service in one cluster (its EndpointSlices). */
async function readyEndpoints(ctx: CheckContext, cluster: string, ns: string, name: string, call: Call) {
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

/** What one sample Service should look like to a cluster's ztunnel. */
interface ExpectedService {
  svc: SampleService;
  /** `<namespace>/<hostname>`, as workloads name the Services they serve. */
  key: string;
  /** Shown in details: `name.namespace`. */
  host: string;
  /** Ready endpoint addresses in the cluster's own network, reached directly. */
  local: string[];
  /** Other networks: how many endpoints each has (folded by istiod behind its east-west gateway). */
  remote: Map<string, number>;
}

async function expectedServices(
  ctx: CheckContext,
  c: ClusterSpec,
  layout: Layout,
  call: Call,
): Promise<ExpectedService[]> {
  const read = clustersReadBy(ctx.spec, c.name);
  const expected: ExpectedService[] = [];
  for (const svc of layout.services) {
    const local: string[] = [];
    const remote = new Map<string, number>();
    for (const x of ctx.spec.clusters.filter((o) => read.includes(o.name) && layout.serving.has(o.name))) {
      const ips = await readyEndpoints(ctx, x.name, svc.namespace, svc.name, call);
      if (x.network === c.network) local.push(...ips);
      else if (ips.length) remote.set(x.network, (remote.get(x.network) ?? 0) + ips.length);
    }
    const host = `${svc.name}.${svc.namespace}`;
    expected.push({ svc, key: `${svc.namespace}/${host}.svc.cluster.local`, host, local, remote });
  }
  return expected;
}

/** Each other network's programmed east-west Gateways, as its clusters' APIs show them (istiod picks one). */
async function otherNetworksGateways(ctx: CheckContext, c: ClusterSpec, call: Call) {
  const gatewaysOf = new Map<string, string[]>();
  for (const x of ctx.spec.clusters) {
    if (x.network === c.network) continue;
    const gw = await eastWestGateway(ctx, x.name, call);
    if (gw.address && gw.network === x.network)
      gatewaysOf.set(x.network, [...(gatewaysOf.get(x.network) ?? []), gw.address]);
  }
  return gatewaysOf;
}

/** One Service's endpoints in istiod's answer: problems found, and what it showed (for a pass). */
function judgeEndpoints(
  e: ExpectedService,
  view: WorkloadView,
  network: string,
  gatewaysOf: Map<string, string[]>,
): { problems: string[]; parts: string[] } {
  const problems: string[] = [];
  const holders = view.workloads.filter((w) => w.services.includes(e.key));
  for (const ip of e.local) {
    if (!holders.some((w) => w.network === network && w.addresses.includes(ip)))
      problems.push(`${e.host}: local endpoint ${ip} is missing`);
  }
  const parts = [`${network} ${e.local.length} direct`];
  for (const [other, count] of e.remote) {
    const folded = holders.filter((w) => w.network === other && w.networkGateway);
    const direct = holders.filter((w) => w.network === other && !w.networkGateway && w.addresses.length);
    const gws = gatewaysOf.get(other) ?? [];
    if (!folded.length) {
      problems.push(
        `${e.host}: no workload stands for the ${count} endpoint(s) of ${other}` +
          (direct.length ? ` (${direct.length} sent by pod address, which ztunnel cannot reach across networks)` : '') +
          (gws.length ? '' : `; ${other} has no programmed east-west Gateway with its network label`),
      );
      continue;
    }
    const gw = folded[0].networkGateway!;
    const via = `${gw.address}:${gw.hbonePort}`;
    if (gws.length && !gws.includes(gw.address))
      problems.push(
        `${e.host}: ${other} is reached through ${via}, but its east-west Gateway is at ${gws.join(' or ')}`,
      );
    else if (gw.hbonePort !== HBONE_PORT)
      problems.push(`${e.host}: ${other} is reached on port ${gw.hbonePort}, not HBONE ${HBONE_PORT}`);
    else if ((folded[0].capacity ?? 1) !== count)
      problems.push(
        `${e.host}: ${other} stands for ${folded[0].capacity ?? 1} endpoint(s), its clusters serve ${count}`,
      );
    parts.push(`${other} ${count} via ${via}`);
  }
  return { problems, parts };
}

/** Whether istiod binds the Service to the cluster's waypoint of the spec's name (by its address or hostname). */
async function judgeWaypoint(
  ctx: CheckContext,
  c: ClusterSpec,
  e: ExpectedService,
  view: WorkloadView,
  waypoint: string,
  call: Call,
): Promise<{ problem?: string; part?: string }> {
  const ns = e.svc.namespace;
  const got = view.services.find((x) => x.name === e.svc.name && x.namespace === ns)?.waypoint;
  const own = await call(() =>
    ctx.api[c.name].core.readNamespacedService({ name: waypoint, namespace: ns }).catch((err: unknown) => {
      if (notFound(err)) return undefined;
      throw err;
    }),
  );
  const want = [own?.spec?.clusterIP, `${waypoint}.${ns}.svc.cluster.local`].filter(Boolean);
  if (!got) return { problem: `${e.host}: no waypoint (the spec asks for ${waypoint})` };
  if (!want.includes(got)) return { problem: `${e.host}: waypoint ${got} is not ${c.name}'s ${waypoint}` };
  return { part: `waypoint ${waypoint}` };
}

export async function ambientWorkloads(
  ctx: CheckContext,
  c: ClusterSpec,
  layout: Layout,
  call: Call,
): Promise<Verdict> {
  const { spec } = ctx;
  const gatewaysOf = await otherNetworksGateways(ctx, c, call);
  const expected = await expectedServices(ctx, c, layout, call);
  return withIstiod(ctx, c.name, call, async (istiod) => {
    const proxy = { clusterId: c.name, network: c.network, istioVersion: spec.istio.version };
    const view = await istiod.through(() => fetchWorkloads(istiod.xds, proxy, { signal: ctx.signal }));
    const problems: string[] = [];
    const waypointProblems: string[] = [];
    const shown: string[] = [];
    for (const e of expected) {
      const endpoints = judgeEndpoints(e, view, c.network, gatewaysOf);
      problems.push(...endpoints.problems);
      if (spec.app.waypoint) {
        const w = await judgeWaypoint(ctx, c, e, view, spec.app.waypoint, call);
        if (w.problem) waypointProblems.push(w.problem);
        if (w.part) endpoints.parts.push(w.part);
      }
      shown.push(`${e.host}: ${endpoints.parts.join(', ')}`);
    }
    const who = `as a ztunnel of ${c.name} (${c.network}), istiod of ${c.name} answers`;
    const all = [...problems, ...waypointProblems];
    if (!all.length) return pass(`${who} ${shown.join('; ')}`);
    const detail = `${who}: ${all.slice(0, 5).join('; ')}${all.length > 5 ? `; and ${all.length - 5} more` : ''}`;
    const waypointHint =
      `a Service's waypoint is the Gateway (class istio-waypoint) its namespace's istio.io/use-waypoint label names, ` +
      `of the same name in every cluster: \`kubectl -n <namespace> get gateway ${spec.app.waypoint}\` in ${c.name}`;
    if (!problems.length) return fail(detail, waypointHint);
    return fail(
      detail,
      (waypointProblems.length ? `${waypointHint}; ` : '') +
        'another network is reached through its east-west Gateway (class istio-east-west) labelled with that ' +
        'network: check `kubectl -n istio-system get gateway istio-eastwest --show-labels` in every cluster, the ' +
        "topology.istio.io/network label of istio-system, the remote secrets, istiod's " +
        `AMBIENT_ENABLE_MULTI_NETWORK=true, and that the Services are labelled istio.io/global=true; see ` +
        istiod.see('/debug/ambientz'),
    );
  });
}

export async function ambientCapture(
  ctx: CheckContext,
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
  ctx: Pick<CheckContext, 'api'>,
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
