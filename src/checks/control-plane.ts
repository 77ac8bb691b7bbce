// Control-plane checks the API answers (MF02xx): the network label istiod reads, istiod available,
// the east-west gateway's address, and the Gateway that exposes services to other networks.
import { loadBalancerAddress } from '../adapters/kube';
import { AMBIENT_EASTWEST_GATEWAY } from '../istio/ambient';
import { EASTWEST_SERVICE, ISTIO_NAMESPACE, NETWORK_LABEL, istiodDeployment } from '../istio/manifests';
import { tagOf } from '../istio/revisions';
import type { StepKind } from '../plan/plan';
import type { ClusterSpec } from '../spec/schema';
import { eastWestGateway } from './ambient';
import type { CheckContext } from './context';
import { eachCluster, everyCluster } from './define';
import { fail, pass } from './result';

/** Whether the plan has a step of this kind on the cluster (what the check looks at was made there). */
const planned = (kind: StepKind) => (ctx: CheckContext, c: ClusterSpec) =>
  ctx.plan.steps.some((s) => s.kind === kind && s.cluster === c.name);

export const networkLabel = eachCluster('MF0201', everyCluster, async (ctx, c, call) => {
  const ns = await call(() => ctx.api[c.name].core.readNamespace({ name: ISTIO_NAMESPACE }));
  const label = ns.metadata?.labels?.[NETWORK_LABEL];
  return label === c.network
    ? pass(`${ISTIO_NAMESPACE} is on network ${c.network}`)
    : fail(
        `${ISTIO_NAMESPACE} has ${NETWORK_LABEL}=${label ?? '(none)'}, want ${c.network}`,
        `label the namespace: kubectl label ns ${ISTIO_NAMESPACE} ${NETWORK_LABEL}=${c.network} --overwrite`,
      );
});

export const istiodAvailable = eachCluster(
  'MF0202',
  (_ctx, c) => c.role === 'primary',
  async (ctx, c, call) => {
    const k = ctx.api[c.name];
    // The istiod of the revision the default tag names (an upgrade moves it cluster by cluster).
    const name = istiodDeployment(await call(() => tagOf(k.admission)));
    const d = await call(() => k.apps.readNamespacedDeploymentStatus({ name, namespace: ISTIO_NAMESPACE }));
    const ok = d.status?.conditions?.some((x) => x.type === 'Available' && x.status === 'True');
    return ok
      ? pass(`${name} is available`)
      : fail(
          `${name} is not available`,
          `kubectl -n istio-system describe deploy ${name} (image pulls, resources, cacerts)`,
        );
  },
);

export const eastwestAddress = eachCluster('MF0203', planned('eastwest-gateway'), async (ctx, c, call) => {
  if (ctx.spec.istio.dataPlane === 'ambient') {
    const gw = await eastWestGateway(ctx, c.name, call);
    if (!gw.address) {
      return fail(
        `the east-west Gateway is not programmed: ${gw.why}`,
        `istiod deploys Gateway ${ISTIO_NAMESPACE}/${AMBIENT_EASTWEST_GATEWAY} and its Service needs a load ` +
          `balancer address: \`kubectl -n ${ISTIO_NAMESPACE} describe gateway ${AMBIENT_EASTWEST_GATEWAY}\``,
      );
    }
    if (gw.network !== c.network) {
      return fail(
        `the east-west Gateway at ${gw.address} is labelled for network ${gw.network ?? '(none)'}, ` +
          `the cluster is on ${c.network}`,
        `istiod finds a network's gateway by its ${NETWORK_LABEL} label: re-run \`meshflow up\` to restore it`,
      );
    }
    return pass(`east-west Gateway ${AMBIENT_EASTWEST_GATEWAY} programmed at ${gw.address} (${c.network})`);
  }
  const svc = await call(() =>
    ctx.api[c.name].core.readNamespacedService({ name: EASTWEST_SERVICE, namespace: ISTIO_NAMESPACE }),
  );
  const address = loadBalancerAddress(svc);
  return address
    ? pass(`east-west gateway at ${address}`)
    : fail(
        'the east-west gateway has no address (load balancer pending)',
        'the cluster needs a load balancer implementation, or set spec.externalIPs on the Service',
      );
});

type Server = { port: { number: number }; tls?: { mode?: string } };

export const crossNetworkGateway = eachCluster('MF0204', planned('expose-services'), async (ctx, c, call) => {
  const gw = await call(() =>
    ctx.api[c.name].custom.getNamespacedCustomObject({
      group: 'networking.istio.io',
      version: 'v1',
      namespace: ISTIO_NAMESPACE,
      plural: 'gateways',
      name: 'cross-network-gateway',
    }),
  );
  const server = (gw as { spec?: { servers?: Server[] } }).spec?.servers?.[0];
  return server?.port.number === 15443 && server.tls?.mode === 'AUTO_PASSTHROUGH'
    ? pass('Gateway cross-network-gateway: 15443 AUTO_PASSTHROUGH')
    : fail('Gateway cross-network-gateway is not 15443 AUTO_PASSTHROUGH', 're-run `meshflow up` to restore it');
});
