// The checks of a mesh, each reported on its own with the likely cause and fix when it fails:
// control-plane checks on every provider, then the traffic checks (./traffic.ts), which need
// running pods and are reported as not supported on local clusters, never as passed.
import * as k8s from '@kubernetes/client-node';
import { type ClusterAccess, kubeFor } from '../adapters/providers';
import type { Heartbeat } from '../adapters/kube';
import { EASTWEST_SERVICE, ISTIO_NAMESPACE, NETWORK_LABEL, remoteSecretName } from '../istio/manifests';
import { buildPlan, linkPairs } from '../plan/plan';
import type { MeshSpec } from '../spec/schema';
import type { CheckResult } from '../workflows/types';
import { type TrafficPort, trafficChecks } from './traffic';

async function check(name: string, cluster: string | undefined, fn: () => Promise<Omit<CheckResult, 'name' | 'cluster'>>): Promise<CheckResult> {
  try {
    return { name, ...(cluster ? { cluster } : {}), ...(await fn()) };
  } catch (err) {
    return { name, ...(cluster ? { cluster } : {}), status: 'failed', detail: (err as Error).message.split('\n')[0] };
  }
}

const WRITE_VERBS = ['create', 'update', 'patch', 'delete'];
const GUARDED_RESOURCES = [
  { group: '', resource: 'pods' }, { group: '', resource: 'services' }, { group: '', resource: 'secrets' },
  { group: '', resource: 'namespaces' }, { group: '', resource: 'serviceaccounts' }, { group: 'apps', resource: 'deployments' },
];

const pass = (detail: string) => ({ status: 'passed' as const, detail });
const fail = (detail: string, hint: string) => ({ status: 'failed' as const, detail, hint });

export async function verifyMesh(spec: MeshSpec, access: (cluster: string) => ClusterAccess, traffic: TrafficPort, heartbeat: Heartbeat): Promise<CheckResult[]> {
  const plan = buildPlan(spec);
  const kubes = Object.fromEntries(spec.clusters.map((c) => [c.name, kubeFor(access(c.name))]));
  const results: CheckResult[] = [];
  const roots = new Map<string, string>();

  for (const c of spec.clusters) {
    const k = kubes[c.name];
    heartbeat({ verifying: c.name });
    results.push(await check('cacerts', c.name, async () => {
      const s = await k.core.readNamespacedSecret({ name: 'cacerts', namespace: ISTIO_NAMESPACE });
      const keys = ['ca-cert.pem', 'ca-key.pem', 'root-cert.pem', 'cert-chain.pem'];
      const missing = keys.filter((key) => !s.data?.[key]);
      if (missing.length) return fail(`cacerts lacks ${missing.join(', ')}`, 'the secret was changed by hand: re-run `meshflow up` to restore it');
      roots.set(c.name, Buffer.from(s.data!['root-cert.pem'], 'base64').toString());
      return pass('ca-cert, ca-key, root-cert and cert-chain present');
    }));
    results.push(await check('network-label', c.name, async () => {
      const ns = await k.core.readNamespace({ name: ISTIO_NAMESPACE });
      const label = ns.metadata?.labels?.[NETWORK_LABEL];
      return label === c.network
        ? pass(`${ISTIO_NAMESPACE} is on network ${c.network}`)
        : fail(`${ISTIO_NAMESPACE} has ${NETWORK_LABEL}=${label ?? '(none)'}, want ${c.network}`, `label the namespace: kubectl label ns ${ISTIO_NAMESPACE} ${NETWORK_LABEL}=${c.network} --overwrite`);
    }));
    if (c.role === 'primary') {
      results.push(await check('istiod-available', c.name, async () => {
        const d = await k.apps.readNamespacedDeploymentStatus({ name: 'istiod', namespace: ISTIO_NAMESPACE });
        const ok = d.status?.conditions?.some((x) => x.type === 'Available' && x.status === 'True');
        return ok ? pass('istiod is available') : fail('istiod is not available', 'kubectl -n istio-system describe deploy istiod (image pulls, resources, cacerts)');
      }));
    }
    if (plan.steps.some((s) => s.kind === 'eastwest-gateway' && s.cluster === c.name)) {
      results.push(await check('eastwest-address', c.name, async () => {
        const svc = await k.core.readNamespacedService({ name: EASTWEST_SERVICE, namespace: ISTIO_NAMESPACE });
        const ing = svc.status?.loadBalancer?.ingress?.[0];
        const address = ing?.ip ?? ing?.hostname ?? svc.spec?.externalIPs?.[0];
        return address
          ? pass(`east-west gateway at ${address}`)
          : fail('the east-west gateway has no address (load balancer pending)', 'the cluster needs a load balancer implementation, or set spec.externalIPs on the Service');
      }));
    }
    if (plan.steps.some((s) => s.kind === 'expose-services' && s.cluster === c.name)) {
      results.push(await check('cross-network-gateway', c.name, async () => {
        const gw = await k.objects.read({ apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name: 'cross-network-gateway', namespace: ISTIO_NAMESPACE } });
        const server = (gw as unknown as { spec: { servers: Array<{ port: { number: number }; tls?: { mode?: string } }> } }).spec.servers[0];
        return server?.port.number === 15443 && server.tls?.mode === 'AUTO_PASSTHROUGH'
          ? pass('Gateway cross-network-gateway: 15443 AUTO_PASSTHROUGH')
          : fail('Gateway cross-network-gateway is not 15443 AUTO_PASSTHROUGH', 're-run `meshflow up` to restore it');
      }));
    }
  }

  results.push(await check('same-root', undefined, async () => {
    if (roots.size !== spec.clusters.length) return fail('not every cluster has a root certificate to compare', 'see the cacerts checks');
    // Group clusters by root: the largest group is the mesh's, the others are the odd ones out.
    const groups = new Map<string, string[]>();
    for (const [cluster, root] of roots) groups.set(root, [...(groups.get(root) ?? []), cluster]);
    if (groups.size === 1) return pass(`all ${roots.size} clusters trust the same root`);
    const [main, ...odd] = [...groups.values()].sort((a, b) => b.length - a.length);
    return fail(
      `${odd.flat().join(', ')} trust${odd.flat().length === 1 ? 's' : ''} a different root from ${main.join(', ')} (${groups.size} roots in all)`,
      'mismatched roots make cross-cluster mTLS fail (CERTIFICATE_VERIFY_FAILED / UNKNOWN_CA): give every cluster cacerts from one root, then restart istiod',
    );
  }));

  for (const [source, target] of linkPairs(spec)) {
    heartbeat({ verifying: `${source}->${target}` });
    results.push(await check('remote-secret', target, async () => {
      const name = remoteSecretName(source);
      const s = await kubes[target].core.readNamespacedSecret({ name, namespace: ISTIO_NAMESPACE });
      if (s.metadata?.labels?.['istio/multiCluster'] !== 'true' || s.metadata?.annotations?.['networking.istio.io/cluster'] !== source) {
        return fail(`${name} lacks label istio/multiCluster=true or annotation networking.istio.io/cluster=${source}`, 'istiod ignores it: re-run `meshflow up`');
      }
      const kc = new k8s.KubeConfig();
      kc.loadFromString(Buffer.from(s.data![source], 'base64').toString());
      const core = kc.makeApiClient(k8s.CoreV1Api);
      try {
        await core.listServiceForAllNamespaces({ limit: 1 });
        await core.listPodForAllNamespaces({ limit: 1 });
        await kc.makeApiClient(k8s.DiscoveryV1Api).listEndpointSliceForAllNamespaces({ limit: 1 });
      } catch (err) {
        const code = (err as { code?: number }).code;
        return fail(
          `${name} cannot read ${source}'s API (${code ?? (err as Error).message.split('\n')[0]})`,
          code === 401 || code === 403
            ? `the reader token was rejected or lacks rights: re-link with \`meshflow up\` (token expired after extend?)`
            : `${source}'s API server address in the secret is not reachable from ${target}: set clusters[${source}].apiServerAddress`,
        );
      }
      // Reader only: no write verb on the kinds a leaked token could do harm with, in any namespace.
      const auth = kc.makeApiClient(k8s.AuthorizationV1Api);
      const writes = WRITE_VERBS.flatMap((verb) => GUARDED_RESOURCES.map((r) => ({ verb, ...r })));
      const allowed = (
        await Promise.all(writes.map(async (w) => ((await auth.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: w } } })).status?.allowed ? `${w.verb} ${w.resource}` : undefined)))
      ).filter((x): x is string => x !== undefined);
      if (allowed.length) return fail(`${name} may ${allowed.join(', ')} in ${source}`, 'the reader ServiceAccount has more than read rights: check the RoleBindings and ClusterRoleBindings of istio-system/istio-reader-service-account');
      return pass(`${target} reads ${source} (services, pods, endpointslices) and may not create, change or delete anything`);
    }));
  }

  results.push(...(await trafficChecks(spec, access, traffic, heartbeat)));
  return results;
}

