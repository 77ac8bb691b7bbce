// How the Istio checks reach a mesh (./istio.ts, ./ambient.ts, ./trust-chain.ts): the serving
// istiod of a cluster through a port-forward to its pod, as istioctl reaches it. What they compare
// istiod's answers with is ./sample-layout.ts.
import { type Forwarded, PortForwardError, withPortForward } from '../adapters/port-forward';
import { ISTIO_NAMESPACE } from '../istio/manifests';
import type { CheckContext } from './context';
import { type Call, type Verdict, fail } from './result';
import { tagOf } from '../istio/revisions';

const notRunning = (cluster: string, log: string): Verdict =>
  fail(
    `istiod of ${cluster} is not running (its supervisor gave up after repeated failures)`,
    `see why in its log, ${log} (\`meshflow logs <mesh> ${cluster}\`); ` +
      'to start it again, tear the mesh down and bring it up',
  );

/** istiod's debug HTTP port, its plaintext xDS port and its TLS xDS and CA port, as its pod serves them. */
const DEBUG_PORT = 8080;
const XDS_PORT = 15010;
export const SECURE_GRPC_PORT = 15012;
const PORT_NAMES: Record<number, string> = {
  [DEBUG_PORT]: 'debug',
  [XDS_PORT]: 'plaintext xDS',
  [SECURE_GRPC_PORT]: 'TLS xDS and CA',
};

/** A cluster's serving istiod as a check reaches it. */
export interface ReachedIstiod {
  /** Its debug HTTP interface (`<debug>/debug/clusterz`) and plaintext xDS (host:port), on this machine. */
  debug: string;
  xds: string;
  /** Its TLS gRPC port (xDS and the CA, host:port), when the check asked for it. */
  secureGrpc: string;
  /** The pod it is, and how a user reads its log. */
  pod: string;
  logs: string;
  /** Where a user looks at one of its debug pages by hand. */
  see: (page: string) => string;
  through: Forwarded['through'];
}

/**
 * Runs a check against the cluster's serving istiod (the revision its default tag names): through a
 * port-forward to a ready pod of it, closed after the check. The result says how it was reached
 * (`via`); a forward the API server or the kubelet refused fails the check with what they said.
 */
export async function withIstiod(
  ctx: CheckContext,
  cluster: string,
  call: Call,
  fn: (istiod: ReachedIstiod) => Promise<Verdict>,
  ports: number[] = [DEBUG_PORT, XDS_PORT],
): Promise<Verdict> {
  const local = ctx.access(cluster).istiod;
  if (local && !local.running) return notRunning(cluster, local.log);
  const rev = (await call(() => tagOf(ctx.api[cluster].admission))) ?? 'default';
  const selector = `app=istiod,istio.io/rev=${rev}`;
  const pods = await call(() =>
    ctx.api[cluster].core.listNamespacedPod({ namespace: ISTIO_NAMESPACE, labelSelector: selector }),
  );
  const pod = pods.items.find(
    (p) =>
      !p.metadata?.deletionTimestamp &&
      p.status?.phase === 'Running' &&
      p.status.conditions?.some((x) => x.type === 'Ready' && x.status === 'True'),
  )?.metadata?.name;
  if (!pod) {
    return fail(
      `no istiod pod of revision ${rev} is running and ready in ${cluster}`,
      `see \`kubectl -n ${ISTIO_NAMESPACE} get pods -l ${selector}\` and their events`,
    );
  }
  const via = `port-forward to ${ISTIO_NAMESPACE}/${pod} (${ports.join(', ')})`;
  try {
    const verdict = await withPortForward(ctx.kubeConfig(cluster), ISTIO_NAMESPACE, pod, ports, (f) =>
      fn({
        debug: `http://127.0.0.1:${f.local.get(DEBUG_PORT)}`,
        xds: `127.0.0.1:${f.local.get(XDS_PORT)}`,
        secureGrpc: `127.0.0.1:${f.local.get(SECURE_GRPC_PORT)}`,
        pod,
        logs: local ? local.log : `\`kubectl -n ${ISTIO_NAMESPACE} logs ${pod}\` in ${cluster}`,
        see: (page) =>
          local
            ? `${local.debug}${page}`
            : `\`kubectl -n ${ISTIO_NAMESPACE} port-forward ${pod} ${DEBUG_PORT}\`, ` +
              `then localhost:${DEBUG_PORT}${page}`,
        through: f.through,
      }),
    );
    return { ...verdict, via };
  } catch (err) {
    // The API server unable to answer now (5xx, 429) says nothing about istiod: the check retries.
    if (!(err instanceof PortForwardError) || (err.code !== undefined && (err.code >= 500 || err.code === 429)))
      throw err;
    return {
      ...fail(
        `istiod of ${cluster} could not be reached: ${err.message}`,
        `the API server opens a port-forward to the pod's kubelet, which connects to the port inside the pod: ` +
          `istiod must listen on ${ports.map((p) => `${p} (${PORT_NAMES[p]})`).join(' and ')}, ` +
          'and this kubeconfig needs ' +
          `\`create pods/portforward\` in ${ISTIO_NAMESPACE} (\`kubectl auth can-i create pods/portforward -n ` +
          `${ISTIO_NAMESPACE}\`)`,
      ),
      via,
    };
  }
}
