// A minimal xDS (ADS) client: asks a running istiod, over its plaintext gRPC xDS port, for the EDS
// endpoints of given Envoy clusters, posing as a sidecar of a given Istio cluster and network. This
// is what a proxy in that cluster would be told, so it shows multi-network routing directly: a
// service's local pods by IP, and each remote network's pods folded into that network's east-west
// gateway (port 15443). The messages are a hand-written subset of Envoy's data-plane API (only the
// fields read or sent here, numbered as in envoy/{service/discovery,config/core,config/endpoint}/v3)
// on protobufjs' bundled google.protobuf types; field names are protobufjs' camelCase.
//
// istiod (1.30, 1.31) answers an EDS request on a fresh stream directly, with no CDS first, and answers
// every requested name (an unknown one with no endpoints). It refuses a node id that is not
// `sidecar~<ip>~<name>.<ns>~<ns>.svc.cluster.local` with a valid IP. Of the node metadata, NETWORK
// decides the answer: without it every pod, local or not, comes back as its network's gateway.
// CLUSTER_ID (cluster-local services, the proxy's topology labels), NAMESPACE (config namespace),
// ISTIO_VERSION (warned about when missing), INSTANCE_IPS and LABELS are sent as a real sidecar does.
import { type ClientDuplexStream, Client, credentials, status } from '@grpc/grpc-js';
import { Root, common } from 'protobufjs';
import { ISTIO_DEFAULT_VERSION } from './version';

/** Whom the request poses as: a sidecar in this Istio cluster, network and namespace. */
export interface XdsProxy {
  clusterId: string;
  network: string;
  namespace: string;
  /** The proxy's IP (the node id needs one); by default an address no pod has. */
  podIp?: string;
  /** The Istio release the proxy runs: the mesh's istio.version (default: meshflow's default). */
  istioVersion?: string;
}

export interface XdsEndpoint {
  address: string;
  port: number;
  weight?: number;
}

export const EDS_TYPE = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
const ADS_METHOD = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
export const DEFAULT_TIMEOUT_MS = 10_000;
export const PLACEHOLDER_IP = '10.255.255.1';

/** The Envoy cluster a sidecar uses for a service port, e.g. `outbound|5000||helloworld.sample.svc.cluster.local`. */
export function outboundCluster(host: string, port: number): string {
  return `outbound|${port}||${host}`;
}

export const field = (type: string, id: number, rule?: 'repeated') => ({ type, id, ...(rule ? { rule } : {}) });

/** The hand-written message subset, shared with the ambient (Delta xDS) client of workload-xds.ts. */
export const root = new Root();
for (const file of ['any', 'struct', 'wrappers']) Root.fromJSON(common.get(`google/protobuf/${file}.proto`)!, root);
root.define('envoy.service.discovery.v3').addJSON({
  DiscoveryRequest: {
    fields: {
      versionInfo: field('string', 1),
      node: field('envoy.config.core.v3.Node', 2),
      resourceNames: field('string', 3, 'repeated'),
      typeUrl: field('string', 4),
      responseNonce: field('string', 5),
    },
  },
  DiscoveryResponse: {
    fields: {
      versionInfo: field('string', 1),
      resources: field('google.protobuf.Any', 2, 'repeated'),
      typeUrl: field('string', 4),
      nonce: field('string', 5),
    },
  },
});
root.define('envoy.config.core.v3').addJSON({
  Node: {
    fields: { id: field('string', 1), cluster: field('string', 2), metadata: field('google.protobuf.Struct', 3) },
  },
  Address: { fields: { socketAddress: field('SocketAddress', 1) } },
  SocketAddress: { fields: { address: field('string', 2), portValue: field('uint32', 3) } },
});
root.define('envoy.config.endpoint.v3').addJSON({
  ClusterLoadAssignment: {
    fields: { clusterName: field('string', 1), endpoints: field('LocalityLbEndpoints', 2, 'repeated') },
  },
  LocalityLbEndpoints: {
    fields: {
      lbEndpoints: field('LbEndpoint', 2, 'repeated'),
      loadBalancingWeight: field('google.protobuf.UInt32Value', 3),
    },
  },
  LbEndpoint: {
    fields: { endpoint: field('Endpoint', 1), loadBalancingWeight: field('google.protobuf.UInt32Value', 4) },
  },
  Endpoint: { fields: { address: field('envoy.config.core.v3.Address', 1) } },
});
const DiscoveryRequest = root.lookupType('envoy.service.discovery.v3.DiscoveryRequest');
const DiscoveryResponse = root.lookupType('envoy.service.discovery.v3.DiscoveryResponse');
const ClusterLoadAssignment = root.lookupType('envoy.config.endpoint.v3.ClusterLoadAssignment');

interface Request {
  versionInfo?: string;
  node?: object;
  resourceNames: string[];
  typeUrl: string;
  responseNonce?: string;
}
interface Response {
  versionInfo: string;
  resources: Array<{ type_url: string; value: Uint8Array }>;
  typeUrl: string;
  nonce: string;
}
interface Assignment {
  clusterName: string;
  endpoints: Array<{
    lbEndpoints: Array<{
      endpoint?: { address?: { socketAddress?: { address: string; portValue: number } } };
      loadBalancingWeight?: { value: number };
    }>;
  }>;
}

/** The Envoy node istiod takes for a sidecar of `proxy`: the id it parses, and the metadata it reads. */
function sidecarNode(proxy: XdsProxy): object {
  const ip = proxy.podIp ?? PLACEHOLDER_IP;
  const ns = proxy.namespace;
  const str = (stringValue: string) => ({ stringValue });
  return {
    id: `sidecar~${ip}~meshflow-probe.${ns}~${ns}.svc.cluster.local`,
    cluster: `meshflow-probe.${ns}`,
    metadata: {
      fields: {
        CLUSTER_ID: str(proxy.clusterId),
        NETWORK: str(proxy.network),
        NAMESPACE: str(ns),
        ISTIO_VERSION: str(proxy.istioVersion ?? ISTIO_DEFAULT_VERSION),
        INSTANCE_IPS: str(ip),
        LABELS: { structValue: { fields: {} } },
      },
    },
  };
}

/** The endpoints of one ClusterLoadAssignment, all localities flattened. */
function endpointsOf(cla: Assignment): XdsEndpoint[] {
  return cla.endpoints.flatMap((locality) =>
    locality.lbEndpoints.flatMap((lb) => {
      const sa = lb.endpoint?.address?.socketAddress;
      if (!sa) return [];
      const weight = lb.loadBalancingWeight?.value;
      return [{ address: sa.address, port: sa.portValue, ...(weight !== undefined ? { weight } : {}) }];
    }),
  );
}

/**
 * Ends a stream's wait when the stream does: a failed call (istiod unreachable, an error) with its
 * reason, a call istiod closed (status OK) before `before`. gRPC reports 'error' before 'status'.
 */
export function endsWith<Req, Res>(
  call: ClientDuplexStream<Req, Res>,
  xdsAddress: string,
  before: string,
  finish: (err: Error) => void,
): void {
  call.on('error', (err: Error & { code?: number; details?: string }) => {
    const why =
      err.code === status.UNAVAILABLE
        ? `unreachable (${err.details?.replace(/\s*Resolution note:\s*$/, '')})`
        : err.message;
    finish(new Error(`xDS ${xdsAddress}: stream failed: ${why}`));
  });
  call.on('status', (st: { code: number }) => {
    if (st.code === status.OK) finish(new Error(`xDS ${xdsAddress}: stream closed before ${before}`));
  });
}

/**
 * EDS endpoints per requested Envoy cluster name, as istiod at `xdsAddress` (host:port, plaintext)
 * gives them to a sidecar of `proxy`. Resolves once every name has an assignment (an unknown one
 * comes back empty); rejects after `timeoutMs` (default 10 s) naming the ones still missing, on a
 * stream error, or with the signal's reason when it aborts. The stream is closed in every case.
 */
export async function fetchEndpoints(
  xdsAddress: string,
  proxy: XdsProxy,
  clusterNames: string[],
  opts: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<Record<string, XdsEndpoint[]>> {
  const { signal, timeoutMs = DEFAULT_TIMEOUT_MS } = opts;
  signal?.throwIfAborted();
  const wanted = [...new Set(clusterNames)];
  const found: Record<string, XdsEndpoint[]> = {};
  if (wanted.length === 0) return found;

  const client = new Client(xdsAddress, credentials.createInsecure());
  let call: ClientDuplexStream<Request, Response> | undefined;
  return new Promise<Record<string, XdsEndpoint[]>>((resolve, reject) => {
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      call?.cancel(); // ends the stream; its CANCELLED error is ignored since we are done
      client.close();
      if (err) reject(err);
      else resolve(found);
    };
    const onAbort = () => finish(signal!.reason as Error);
    const timer = setTimeout(() => {
      const missing = wanted.filter((n) => !(n in found));
      finish(new Error(`xDS ${xdsAddress}: no EDS answer within ${timeoutMs} ms for ${missing.join(', ')}`));
    }, timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });

    call = client.makeBidiStreamRequest<Request, Response>(
      ADS_METHOD,
      (req) => Buffer.from(DiscoveryRequest.encode(DiscoveryRequest.fromObject(req)).finish()),
      (buf) => DiscoveryResponse.toObject(DiscoveryResponse.decode(buf), { defaults: true }) as Response,
    );
    call.on('data', (res: Response) => {
      if (done || res.typeUrl !== EDS_TYPE) return;
      try {
        for (const any of res.resources) {
          const cla = ClusterLoadAssignment.toObject(ClusterLoadAssignment.decode(any.value), {
            defaults: true,
          }) as Assignment;
          found[cla.clusterName] = endpointsOf(cla);
        }
      } catch (err) {
        return finish(new Error(`xDS ${xdsAddress}: undecodable EDS response: ${(err as Error).message}`));
      }
      if (wanted.every((n) => n in found)) return finish();
      // Acknowledge, keeping the same subscription, and wait for the rest.
      call!.write({ versionInfo: res.versionInfo, responseNonce: res.nonce, resourceNames: wanted, typeUrl: EDS_TYPE });
    });
    endsWith(call, xdsAddress, 'answering all clusters', finish);
    call.write({ node: sidecarNode(proxy), resourceNames: wanted, typeUrl: EDS_TYPE });
  });
}
