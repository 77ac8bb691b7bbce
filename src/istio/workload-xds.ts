// What istiod tells a ztunnel: its workload discovery (the `istio.workload.Address` resources of
// Istio's ambient data plane), asked over Delta xDS on istiod's plaintext gRPC port, posing as a
// ztunnel of one cluster. In a multi-network ambient mesh istiod sends a ztunnel the workloads of
// its own network one by one (pod addresses) and, for a global Service, one workload per other
// network standing for all that network's endpoints, whose network gateway is that network's
// east-west Gateway (HBONE 15008) and whose capacity is how many endpoints it stands for.
//
// The messages are a hand-written subset of Istio's workload API (pkg/workloadapi/workload.proto)
// and Envoy's Delta xDS messages, numbered as there, on the types xds.ts already defines. istiod
// answers a ztunnel only over Delta xDS, and sends every address on a wildcard subscription.
import { type ClientDuplexStream, Client, credentials } from '@grpc/grpc-js';
import { ISTIO_DEFAULT_VERSION } from './version';
import { DEFAULT_TIMEOUT_MS, PLACEHOLDER_IP, endsWith, field, root } from './xds';

export const ADDRESS_TYPE = 'type.googleapis.com/istio.workload.Address';
const DELTA_METHOD = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';

root.define('envoy.service.discovery.v3').addJSON({
  DeltaDiscoveryRequest: {
    fields: {
      node: field('envoy.config.core.v3.Node', 1),
      typeUrl: field('string', 2),
      resourceNamesSubscribe: field('string', 3, 'repeated'),
      responseNonce: field('string', 6),
    },
  },
  DeltaDiscoveryResponse: {
    fields: {
      systemVersionInfo: field('string', 1),
      resources: field('Resource', 2, 'repeated'),
      typeUrl: field('string', 4),
      nonce: field('string', 5),
      removedResources: field('string', 6, 'repeated'),
    },
  },
  Resource: {
    fields: { version: field('string', 1), resource: field('google.protobuf.Any', 2), name: field('string', 3) },
  },
});
root.define('istio.workload').addJSON({
  Address: {
    oneofs: { type: { oneof: ['workload', 'service'] } },
    fields: {
      workload: field('Workload', 1),
      service: field('Service', 2),
    },
  },
  Service: {
    fields: {
      name: field('string', 1),
      namespace: field('string', 2),
      hostname: field('string', 3),
      waypoint: field('GatewayAddress', 7),
    },
  },
  Workload: {
    fields: {
      name: field('string', 1),
      namespace: field('string', 2),
      addresses: field('bytes', 3, 'repeated'),
      network: field('string', 4),
      tunnelProtocol: field('int32', 5),
      networkGateway: field('GatewayAddress', 19),
      clusterId: field('string', 18),
      uid: field('string', 20),
      services: { keyType: 'string', type: 'PortList', id: 22 } as ReturnType<typeof field>,
      capacity: field('google.protobuf.UInt32Value', 27),
    },
  },
  PortList: { fields: {} },
  GatewayAddress: {
    oneofs: { destination: { oneof: ['hostname', 'address'] } },
    fields: {
      hostname: field('NamespacedHostname', 1),
      address: field('NetworkAddress', 2),
      hboneMtlsPort: field('uint32', 3),
    },
  },
  NetworkAddress: { fields: { network: field('string', 1), address: field('bytes', 2) } },
  NamespacedHostname: { fields: { namespace: field('string', 1), hostname: field('string', 2) } },
});
const DeltaRequest = root.lookupType('envoy.service.discovery.v3.DeltaDiscoveryRequest');
const DeltaResponse = root.lookupType('envoy.service.discovery.v3.DeltaDiscoveryResponse');
const AddressMessage = root.lookupType('istio.workload.Address');

/** A workload as a ztunnel is told of it. */
export interface AmbientWorkload {
  uid: string;
  name: string;
  namespace: string;
  /** Its pod addresses; none for a workload standing for another network's endpoints. */
  addresses: string[];
  network: string;
  clusterId: string;
  /** 'HBONE' when ztunnel tunnels to it (captured in ambient), 'NONE' otherwise. */
  tunnel: string;
  /** The Services it serves, as `<namespace>/<hostname>`. */
  services: string[];
  /** Where a ztunnel of another network sends its traffic: that network's east-west gateway. */
  networkGateway?: { address: string; network: string; hbonePort: number };
  /** How many endpoints it stands for (set on a remote network's workload). */
  capacity?: number;
}

export interface AmbientService {
  name: string;
  namespace: string;
  hostname: string;
  /** Its waypoint, by address (the waypoint Service's IP) or hostname, when it has one. */
  waypoint?: string;
}

export interface WorkloadView {
  workloads: AmbientWorkload[];
  services: AmbientService[];
}

/** Whom the request poses as: a ztunnel on a node of this Istio cluster. */
export interface ZtunnelProxy {
  clusterId: string;
  network: string;
  istioVersion?: string;
}

const TUNNELS = ['NONE', 'HBONE', 'LEGACY_ISTIO_MTLS'];

/** The Envoy node istiod takes for a ztunnel (its id must be `ztunnel~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`). */
function ztunnelNode(proxy: ZtunnelProxy): object {
  const str = (stringValue: string) => ({ stringValue });
  return {
    id: `ztunnel~${PLACEHOLDER_IP}~meshflow-probe.istio-system~istio-system.svc.cluster.local`,
    cluster: 'ztunnel.istio-system',
    metadata: {
      fields: {
        CLUSTER_ID: str(proxy.clusterId),
        NETWORK: str(proxy.network),
        NAMESPACE: str('istio-system'),
        ISTIO_VERSION: str(proxy.istioVersion ?? ISTIO_DEFAULT_VERSION),
      },
    },
  };
}

function ipOf(bytes: Uint8Array): string {
  if (bytes.length === 4) return [...bytes].join('.');
  const words: string[] = [];
  for (let i = 0; i < bytes.length; i += 2) words.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return words.join(':');
}

type DecodedGateway = {
  address?: { network: string; address: Uint8Array };
  hostname?: { hostname: string };
  hboneMtlsPort: number;
};

const gatewayTarget = (gw: DecodedGateway) => (gw.address ? ipOf(gw.address.address) : (gw.hostname?.hostname ?? ''));

interface DecodedWorkload {
  uid: string;
  name: string;
  namespace: string;
  addresses: Uint8Array[];
  network: string;
  tunnelProtocol: number;
  clusterId: string;
  services: Record<string, unknown>;
  networkGateway?: {
    address?: { network: string; address: Uint8Array };
    hostname?: { hostname: string };
    hboneMtlsPort: number;
  };
  capacity?: { value: number };
}

function workloadOf(w: DecodedWorkload): AmbientWorkload {
  const gw = w.networkGateway;
  return {
    uid: w.uid,
    name: w.name,
    namespace: w.namespace,
    addresses: w.addresses.map(ipOf),
    network: w.network,
    clusterId: w.clusterId,
    tunnel: TUNNELS[w.tunnelProtocol] ?? String(w.tunnelProtocol),
    services: Object.keys(w.services ?? {}),
    ...(gw
      ? {
          networkGateway: {
            address: gatewayTarget(gw),
            network: gw.address?.network ?? '',
            hbonePort: gw.hboneMtlsPort,
          },
        }
      : {}),
    ...(w.capacity ? { capacity: w.capacity.value } : {}),
  };
}

interface DeltaResponseShape {
  resources: Array<{ name: string; resource?: { value: Uint8Array } }>;
  typeUrl: string;
  nonce: string;
}

/**
 * Every address istiod at `xdsAddress` (host:port, plaintext) gives a ztunnel of `proxy`: its
 * first answer to a wildcard subscription, which holds them all. Rejects after `timeoutMs`
 * (default 10 s), on a stream error, or with the signal's reason; the stream is closed in every case.
 */
export async function fetchWorkloads(
  xdsAddress: string,
  proxy: ZtunnelProxy,
  opts: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<WorkloadView> {
  const { signal, timeoutMs = DEFAULT_TIMEOUT_MS } = opts;
  signal?.throwIfAborted();
  const client = new Client(xdsAddress, credentials.createInsecure());
  let call: ClientDuplexStream<object, DeltaResponseShape> | undefined;
  return new Promise<WorkloadView>((resolve, reject) => {
    let done = false;
    const finish = (err?: Error, view?: WorkloadView) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      call?.cancel();
      client.close();
      if (err) reject(err);
      else resolve(view!);
    };
    const onAbort = () => finish(signal!.reason as Error);
    const timer = setTimeout(
      () => finish(new Error(`xDS ${xdsAddress}: no workload answer (Delta xDS) within ${timeoutMs} ms`)),
      timeoutMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    call = client.makeBidiStreamRequest<object, DeltaResponseShape>(
      DELTA_METHOD,
      (req) => Buffer.from(DeltaRequest.encode(DeltaRequest.fromObject(req)).finish()),
      (buf) => DeltaResponse.toObject(DeltaResponse.decode(buf), { defaults: true }) as DeltaResponseShape,
    );
    call.on('data', (res: DeltaResponseShape) => {
      if (done || res.typeUrl !== ADDRESS_TYPE) return;
      const view: WorkloadView = { workloads: [], services: [] };
      try {
        for (const r of res.resources) {
          if (!r.resource) continue;
          const a = AddressMessage.toObject(AddressMessage.decode(r.resource.value), { defaults: true }) as {
            workload?: DecodedWorkload;
            service?: Omit<AmbientService, 'waypoint'> & { waypoint?: DecodedGateway };
          };
          if (a.workload) view.workloads.push(workloadOf(a.workload));
          else if (a.service) {
            const { waypoint, ...svc } = a.service;
            view.services.push({ ...svc, ...(waypoint ? { waypoint: gatewayTarget(waypoint) } : {}) });
          }
        }
      } catch (err) {
        return finish(new Error(`xDS ${xdsAddress}: undecodable workload response: ${(err as Error).message}`));
      }
      finish(undefined, view);
    });
    endsWith(call, xdsAddress, 'any workload answer', finish);
    call.write({ node: ztunnelNode(proxy), typeUrl: ADDRESS_TYPE, resourceNamesSubscribe: [] });
  });
}
