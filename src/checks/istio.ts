// The checks only a running Istio can answer: what istiod itself has discovered, what it hands a
// proxy over xDS, whether its CA signs certificates that chain to the mesh root (./trust-chain.ts),
// whether Istio injected the sample's pods, and what Istio's own analyzer says.
// The API-side checks (./trust.ts, ./control-plane.ts, ./links.ts) prove the objects are right;
// these prove Istio read them as meant. Each failure names its likely cause and fix.
//
// `discovery` and `cross-network-endpoints` ask istiod directly: its debug HTTP interface (8080)
// and its plaintext xDS port (15010), which an in-cluster istiod serves only inside its pod. They
// reach them as istioctl does, through a port-forward to the serving revision's istiod pod, opened
// for the check and closed after it: on every provider, the same way. (On local clusters and the
// GKE emulator's, kwok plays the kubelet and its port-forward leads to the istiod meshflow runs
// beside the cluster: see sim/data-plane.ts.) `injection` and `analyze` read the clusters' APIs.
import { execa } from 'execa';
import { withKubeconfigFile } from '../adapters/providers';
import { EASTWEST_SERVICE, ISTIO_NAMESPACE } from '../istio/manifests';
import { revisionLabel } from '../istio/version';
import { fetchEndpoints, outboundCluster } from '../istio/xds';
import type { ClusterSpec } from '../spec/schema';
import { loadBalancerAddress, pause, pollDelay } from '../adapters/kube';
import { ambientCapture, ambientWorkloads } from './ambient';
import { eachCluster, everyCluster } from './define';
import { type Call, type Verdict, fail, notFound, pass } from './result';
import { controlPlaneOf } from '../plan/plan';
import type { CheckContext } from './context';
import { type ReachedIstiod, withIstiod } from './istiod-reach';
import { type SampleLayout, clustersReadBy } from './sample-layout';
import { trustChain } from './trust-chain';
import { podRevision, tagOf } from '../istio/revisions';

async function debugJson<T>(endpoint: string, path: string, signal?: AbortSignal): Promise<T> {
  const timeout = AbortSignal.timeout(10_000);
  const r = await fetch(`${endpoint}${path}`, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
  if (!r.ok) throw Object.assign(new Error(`istiod ${path}: HTTP ${r.status}`), { code: r.status });
  return (await r.json()) as T;
}

const sidecar = (ctx: CheckContext) => ctx.spec.istio.dataPlane !== 'ambient';
const withServices = (ctx: CheckContext) => ctx.layout.services.length > 0;
const withSamplePods = (ctx: CheckContext, c: ClusterSpec) => !!ctx.layout.namespaces.get(c.name)?.length;

export const discoveryCheck = eachCluster(
  'MF0302',
  (_ctx, c) => c.role === 'primary',
  (ctx, p, call) => discovery(ctx, p, ctx.layout, call),
);

export const crossNetworkEndpoints = eachCluster(
  'MF0401',
  (ctx) => sidecar(ctx) && withServices(ctx),
  (ctx, c, call) => crossNetwork(ctx, c, ctx.layout, call),
);

export const ambientWorkloadsCheck = eachCluster(
  'MF0402',
  (ctx) => !sidecar(ctx) && withServices(ctx),
  (ctx, c, call) => ambientWorkloads(ctx, c, ctx.layout, call),
);

export const trustChainCheck = eachCluster('MF0103', everyCluster, trustChain);

export const injectionCheck = eachCluster(
  'MF0403',
  (ctx, c) => sidecar(ctx) && withSamplePods(ctx, c),
  (ctx, c, call) => injection(ctx, c, ctx.layout.namespaces.get(c.name)!, call),
);

export const ambientCaptureCheck = eachCluster(
  'MF0404',
  (ctx, c) => !sidecar(ctx) && withSamplePods(ctx, c),
  (ctx, c, call) => ambientCapture(ctx, c, ctx.layout.namespaces.get(c.name)!, call),
);

/** Not run without the pinned istioctl (a verification that could not get it). */
export const analyzeCheck = eachCluster(
  'MF0405',
  (ctx) => !!ctx.istioctl,
  (ctx, c) => analyze(ctx, c),
);

/** How long discovery waits for a cluster istiod is still syncing (asking again as pollDelay says). */
const SYNC_WAIT_MS = 30_000;

interface ClusterzEntry {
  id: string;
  syncStatus?: string;
}

type Shards = Record<string, Record<string, { Shards: Record<string, Array<{ Addresses?: string[] }>> }>>;

async function discovery(ctx: CheckContext, p: ClusterSpec, layout: SampleLayout, call: Call): Promise<Verdict> {
  return withIstiod(ctx, p.name, call, (istiod) => discoveryOf(ctx, p, layout, call, istiod));
}

async function discoveryOf(
  ctx: CheckContext,
  p: ClusterSpec,
  layout: SampleLayout,
  call: Call,
  istiod: ReachedIstiod,
): Promise<Verdict> {
  const expected = clustersReadBy(ctx.spec, p.name);
  // A cluster linked a moment ago is listed as `syncing` while istiod's informers list its API
  // (seconds, longer on a busy machine): wait for that to end, up to SYNC_WAIT_MS, before judging.
  const waitUntil = Date.now() + SYNC_WAIT_MS;
  let status: Map<string, string>;
  for (let attempt = 0; ; attempt++) {
    const clusterz = await call(() =>
      istiod.through(() => debugJson<ClusterzEntry[]>(istiod.debug, '/debug/clusterz', ctx.signal)),
    );
    status = new Map(clusterz.map((e) => [e.id, e.syncStatus ?? 'unknown']));
    const syncing = expected.filter((c) => status.get(c) === 'syncing');
    if (!syncing.length || Date.now() >= waitUntil) break;
    await pause(pollDelay(attempt), ctx.signal);
  }
  const unsynced = expected.filter((c) => status.get(c) !== 'synced');
  if (unsynced.length) {
    return fail(
      `istiod of ${p.name} does not read ${unsynced.map((c) => `${c} (${status.get(c) ?? 'not listed'})`).join(', ')}`,
      `istiod finds other clusters through the remote secrets in ${p.name}'s ${ISTIO_NAMESPACE}: check that ` +
        `istio-remote-secret-<cluster> exists, is labelled istio/multiCluster=true and names the right cluster, ` +
        `and see ${istiod.see('/debug/clusterz')}`,
    );
  }
  // Every cluster that runs sample pods has endpoints in istiod's shards, under its own cluster ID.
  const shards = await call(() =>
    istiod.through(() => debugJson<Shards>(istiod.debug, '/debug/endpointShardz', ctx.signal)),
  );
  const counts = new Map<string, number>();
  for (const svc of layout.services) {
    const host = `${svc.name}.${svc.namespace}.svc.cluster.local`;
    for (const [shard, endpoints] of Object.entries(shards[host]?.[svc.namespace]?.Shards ?? {})) {
      const cluster = shard.split('/').slice(1).join('/');
      counts.set(cluster, (counts.get(cluster) ?? 0) + endpoints.length);
    }
  }
  const hosting = expected.filter((c) => layout.serving.has(c));
  const missing = hosting.filter((c) => !counts.get(c));
  if (missing.length) {
    return fail(
      `istiod of ${p.name} has no endpoints of the sample from ${missing.join(', ')}`,
      'the pods of those clusters are not Running or not selected by their Services, or istiod cannot list ' +
        `their EndpointSlices (the reader's rights): see ${istiod.see('/debug/endpointShardz')}`,
    );
  }
  const seen = hosting.map((c) => `${c} ${counts.get(c)}`).join(', ');
  return pass(`istiod of ${p.name} reads ${expected.join(', ')} (synced)${seen ? `; sample endpoints: ${seen}` : ''}`);
}

/**
 * Asked as a sidecar of cluster `c`, istiod must give each sample service's endpoints in c's own
 * network at their pod IPs, and those of every other network at that network's east-west gateway
 * on 15443: the core promise of multi-network Istio.
 */
async function crossNetwork(ctx: CheckContext, c: ClusterSpec, layout: SampleLayout, call: Call): Promise<Verdict> {
  const primary = controlPlaneOf(ctx.spec, c);
  return withIstiod(ctx, primary.name, call, (istiod) => crossNetworkOf(ctx, c, primary, layout, call, istiod));
}

async function crossNetworkOf(
  ctx: CheckContext,
  c: ClusterSpec,
  primary: ClusterSpec,
  layout: SampleLayout,
  call: Call,
  istiod: ReachedIstiod,
): Promise<Verdict> {
  const visible = clustersReadBy(ctx.spec, primary.name);
  // What the clusters' APIs say: pod addresses per service, and each network's gateways.
  const gateways = new Map<string, Set<string>>();
  for (const other of ctx.spec.clusters.filter((x) => visible.includes(x.name) && x.network !== c.network)) {
    try {
      const svc = await call(() =>
        ctx.api[other.name].core.readNamespacedService({ name: EASTWEST_SERVICE, namespace: ISTIO_NAMESPACE }),
      );
      const address = loadBalancerAddress(svc);
      if (address) gateways.set(other.network, (gateways.get(other.network) ?? new Set()).add(`${address}:15443`));
    } catch (err) {
      if (!notFound(err)) throw err;
    }
  }
  const problems: string[] = [];
  const answers: string[] = [];
  const names = layout.services.map((s) => outboundCluster(`${s.name}.${s.namespace}.svc.cluster.local`, s.port));
  const got = await call(() =>
    istiod.through(() =>
      fetchEndpoints(
        istiod.xds,
        {
          clusterId: c.name,
          network: c.network,
          namespace: layout.services[0].namespace,
          istioVersion: ctx.spec.istio.version,
        },
        names,
        { signal: ctx.signal },
      ),
    ),
  );
  for (const [i, svc] of layout.services.entries()) {
    const want = new Set<string>();
    const wantGateways = new Map<string, Set<string>>();
    for (const other of ctx.spec.clusters.filter((x) => visible.includes(x.name))) {
      if (!layout.namespaces.get(other.name)?.includes(svc.namespace)) continue;
      const slices = await call(() =>
        ctx.api[other.name].discovery.listNamespacedEndpointSlice({
          namespace: svc.namespace,
          labelSelector: `kubernetes.io/service-name=${svc.name}`,
        }),
      );
      const addresses = slices.items.flatMap((s) =>
        (s.endpoints ?? [])
          .filter((e) => e.conditions?.ready !== false)
          .flatMap((e) => (e.addresses ?? []).map((a) => `${a}:${s.ports?.[0]?.port ?? svc.port}`)),
      );
      if (!addresses.length) continue;
      if (other.network === c.network) for (const a of addresses) want.add(a);
      else wantGateways.set(other.network, gateways.get(other.network) ?? new Set());
    }
    const have = (got[names[i]] ?? []).map((e) => `${e.address}:${e.port}`);
    const gatewayAddrs = new Set([...wantGateways.values()].flatMap((s) => [...s]));
    const unexpected = have.filter((a) => !want.has(a) && !gatewayAddrs.has(a));
    const missingPods = [...want].filter((a) => !have.includes(a));
    const missingNetworks = [...wantGateways.entries()]
      .filter(([, addrs]) => ![...addrs].some((a) => have.includes(a)))
      .map(([net, addrs]) => `${net} (${addrs.size ? [...addrs].join(' or ') : 'gateway has no address'})`);
    if (unexpected.length || missingPods.length || missingNetworks.length) {
      problems.push(
        `${svc.name}.${svc.namespace}: got [${have.join(', ')}]` +
          (missingPods.length ? `; missing pods ${missingPods.join(', ')}` : '') +
          (missingNetworks.length ? `; no gateway of ${missingNetworks.join(', ')}` : '') +
          (unexpected.length ? `; unexpected ${unexpected.join(', ')}` : ''),
      );
    }
    const label = (a: string) =>
      want.has(a) ? `${a} (pod)` : `${a} (${[...wantGateways].find(([, s]) => s.has(a))?.[0]} gateway)`;
    answers.push(`${svc.name}.${svc.namespace} -> ${have.map(label).join(', ') || 'none'}`);
  }
  if (problems.length) {
    return fail(
      `as a proxy of ${c.name} (${c.network}), istiod of ${primary.name} answers: ${problems.join(' | ')}`,
      'endpoints of another network must go through its east-west gateway: check the topology.istio.io/network ' +
        `label of ${ISTIO_NAMESPACE} in every cluster, the east-west gateway's address and network label, ` +
        `and the remote secrets; see ${istiod.see('/debug/networkz')}`,
    );
  }
  const shown = answers.slice(0, 3).join('; ') + (answers.length > 3 ? `; and ${answers.length - 3} more` : '');
  return pass(`as a proxy of ${c.name} (${c.network}), istiod of ${primary.name} answers ${shown}`);
}

async function injection(ctx: CheckContext, c: ClusterSpec, namespaces: string[], call: Call): Promise<Verdict> {
  const bad: string[] = [];
  let pods = 0;
  // The revision the cluster's default tag names injects its sample pods (an upgrade moves it).
  const revision = revisionLabel(await call(() => tagOf(ctx.api[c.name].admission)));
  for (const ns of namespaces) {
    const list = await call(() => ctx.api[c.name].core.listNamespacedPod({ namespace: ns }));
    for (const pod of list.items) {
      if (pod.metadata?.deletionTimestamp) continue;
      pods++;
      const all = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
      const proxy = all.find((x) => x.name === 'istio-proxy');
      const env = new Map((proxy?.env ?? []).map((e) => [e.name, e.value]));
      const name = `${ns}/${pod.metadata?.name}`;
      if (!proxy) bad.push(`${name} has no istio-proxy`);
      else if (podRevision(pod) !== revision)
        bad.push(`${name} was injected by revision ${podRevision(pod) ?? '?'}, the default tag names ${revision}`);
      else if (env.get('ISTIO_META_CLUSTER_ID') !== c.name || env.get('ISTIO_META_NETWORK') !== c.network) {
        bad.push(
          `${name} was injected for cluster ${env.get('ISTIO_META_CLUSTER_ID') ?? '?'}, ` +
            `network ${env.get('ISTIO_META_NETWORK') || '(none)'}`,
        );
      }
    }
  }
  if (!pods) {
    return fail(
      `no sample pods in ${namespaces.join(', ')}`,
      `see \`kubectl -n ${namespaces[0]} get events\`: the injection webhook must reach istiod for pods to be created`,
    );
  }
  if (bad.length) {
    return fail(
      bad.slice(0, 5).join('; ') + (bad.length > 5 ? `; and ${bad.length - 5} more` : ''),
      'pods created before istiod ran, or by a webhook of another cluster, keep the wrong sidecar: check the ' +
        'istio-injection label and the injection webhook (istio-revision-tag-default or istio-sidecar-injector), ' +
        'then restart the Deployments',
    );
  }
  return pass(
    `${pods} sample pod(s) carry istio-proxy of revision ${revision} for cluster ${c.name}, network ${c.network}`,
  );
}

interface AnalyzerMessage {
  code: string;
  level: string;
  message: string;
  origin?: string;
}

async function analyze(ctx: CheckContext, c: ClusterSpec): Promise<Verdict> {
  const a = ctx.access(c.name);
  const r = await withKubeconfigFile(a, (kubeconfig) => {
    const args = ['analyze', '--all-namespaces', '--output', 'json', '--kubeconfig', kubeconfig];
    if (a.context) args.push('--context', a.context);
    return execa(ctx.istioctl!, args, { reject: false, timeout: 120_000, cancelSignal: ctx.signal });
  });
  ctx.signal?.throwIfAborted();
  let messages: AnalyzerMessage[];
  try {
    messages = JSON.parse(r.stdout || '[]') as AnalyzerMessage[];
  } catch {
    // Not a verdict about the mesh: an analyzer that could not run (API unreachable) is retried.
    throw Object.assign(new Error(`istioctl analyze failed: ${r.stderr.split('\n').slice(-3).join(' ')}`), {
      code: 503,
    });
  }
  const errors = messages.filter((m) => m.level === 'Error');
  const warnings = messages.filter((m) => m.level === 'Warning').length;
  if (errors.length) {
    return fail(
      errors
        .slice(0, 5)
        .map((m) => `${m.code} ${m.origin ?? ''}: ${m.message}`)
        .join('; '),
      `Istio's analyzer found ${errors.length} error(s): see https://istio.io/latest/docs/reference/config/analysis/ ` +
        `and run \`istioctl analyze -A --kubeconfig ${a.kubeconfig}\``,
    );
  }
  return pass(`istioctl analyze: no errors (${warnings} warning(s))`);
}
