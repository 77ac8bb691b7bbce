// The Google Cloud clients meshflow's GKE provider uses: the real libraries, against Google or
// against meshflow's GKE emulator. With GKE_EMULATOR_HOST set they speak the same wire protocol
// (gRPC for ClusterManager, REST for Compute) to 127.0.0.1 with no Google credentials, and never
// probe the metadata server.
import * as grpc from '@grpc/grpc-js';
import type { ClusterManagerClient } from '@google-cloud/container';
import type { FirewallsClient, GlobalOperationsClient } from '@google-cloud/compute';
import type { OAuth2Client } from 'google-auth-library';

/**
 * The Google Cloud client libraries, loaded when a client is first made: they take about two
 * seconds to load, which every command that never talks to GKE (most of them) should not pay.
 */
function libraries() {
  /* eslint-disable @typescript-eslint/no-require-imports */
  return {
    ...(require('@google-cloud/container') as Pick<typeof import('@google-cloud/container'), 'ClusterManagerClient'>),
    ...(require('@google-cloud/compute') as Pick<
      typeof import('@google-cloud/compute'),
      'FirewallsClient' | 'GlobalOperationsClient'
    >),
    ...(require('google-auth-library') as Pick<typeof import('google-auth-library'), 'GoogleAuth' | 'OAuth2Client'>),
  };
  /* eslint-enable @typescript-eslint/no-require-imports */
}

/** `host:port` of the emulator's ClusterManager (gRPC). */
export const GKE_EMULATOR_HOST = 'GKE_EMULATOR_HOST';
/** `host:port` of the emulator's Compute REST API (firewall rules); default: GKE_EMULATOR_HOST's port + 1. */
export const GKE_COMPUTE_EMULATOR_HOST = 'GKE_COMPUTE_EMULATOR_HOST';
/** The access token the emulator's clusters accept (it stands in for a Google OAuth token: not a secret). */
export const EMULATOR_ACCESS_TOKEN = 'gke-emulator-access-token';
export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';

export interface GkeEndpoints {
  /** Unset: Google's own endpoints with application default credentials. */
  emulator?: { grpc: HostPort; compute: HostPort };
}

export interface HostPort {
  host: string;
  port: number;
}

function hostPort(value: string, name: string): HostPort {
  const m = /^([^:]+|\[[^\]]+\]):(\d{1,5})$/.exec(value.trim());
  if (!m) throw new Error(`${name}=${value}: must be host:port, such as 127.0.0.1:8085`);
  return { host: m[1], port: Number(m[2]) };
}

/** Where the GKE clients go, from the environment. */
export function gkeEndpoints(env: NodeJS.ProcessEnv = process.env): GkeEndpoints {
  const gke = env[GKE_EMULATOR_HOST];
  if (!gke) return {};
  const grpcHost = hostPort(gke, GKE_EMULATOR_HOST);
  const compute = env[GKE_COMPUTE_EMULATOR_HOST]
    ? hostPort(env[GKE_COMPUTE_EMULATOR_HOST]!, GKE_COMPUTE_EMULATOR_HOST)
    : { host: grpcHost.host, port: grpcHost.port + 1 };
  return { emulator: { grpc: grpcHost, compute } };
}

/** An auth client that holds the emulator's token: no network, no metadata server. */
function emulatorAuthClient(): OAuth2Client {
  // Node's own fetch: otherwise gaxios imports node-fetch with a dynamic import(), which Jest's VM
  // refuses (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING_FLAG), so no test could reach Compute.
  const client = new (libraries().OAuth2Client)({ transporterOptions: { fetchImplementation: fetch } });
  // Far in the future: the library never tries to refresh it.
  client.setCredentials({ access_token: EMULATOR_ACCESS_TOKEN, expiry_date: Date.now() + 10 * 365 * 86_400_000 });
  return client;
}

export interface GkeClients {
  clusters: ClusterManagerClient;
  firewalls: FirewallsClient;
  operations: GlobalOperationsClient;
  /** A Google access token for the clusters' Kubernetes APIs (refreshed by the library before it expires). */
  accessToken(): Promise<string>;
  /** Whether these talk to the emulator. */
  emulated: boolean;
  close(): Promise<void>;
}

export function gkeClients(endpoints: GkeEndpoints = gkeEndpoints()): GkeClients {
  const { ClusterManagerClient, FirewallsClient, GlobalOperationsClient, GoogleAuth } = libraries();
  const e = endpoints.emulator;
  if (e) {
    const authClient = emulatorAuthClient();
    const common = { universeDomain: 'googleapis.com', authClient };
    const clusters = new ClusterManagerClient({
      ...common,
      apiEndpoint: e.grpc.host,
      port: e.grpc.port,
      sslCreds: grpc.credentials.createInsecure(),
    });
    const rest = { ...common, apiEndpoint: e.compute.host, port: e.compute.port, protocol: 'http', fallback: true };
    const firewalls = new FirewallsClient(rest);
    const operations = new GlobalOperationsClient(rest);
    return {
      clusters,
      firewalls,
      operations,
      emulated: true,
      accessToken: async () => EMULATOR_ACCESS_TOKEN,
      close: () => closeAll(clusters, firewalls, operations),
    };
  }
  const auth = new GoogleAuth({ scopes: [CLOUD_PLATFORM_SCOPE] });
  const clusters = new ClusterManagerClient({ auth });
  const firewalls = new FirewallsClient({ auth });
  const operations = new GlobalOperationsClient({ auth });
  return {
    clusters,
    firewalls,
    operations,
    emulated: false,
    accessToken: async () => {
      const token = await auth.getAccessToken();
      if (!token)
        throw new Error(
          'application default credentials gave no access token; run `gcloud auth application-default login`',
        );
      return token;
    },
    close: () => closeAll(clusters, firewalls, operations),
  };
}

async function closeAll(...clients: Array<{ close(): Promise<void> }>): Promise<void> {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
}

/** What the emulator says of itself (GET /emulator/info on its Compute port). */
export interface EmulatorInfo {
  /** Its state directory: the local clusters that back its GKE clusters live under it. */
  stateDir: string;
}

export async function emulatorInfo(endpoints: GkeEndpoints = gkeEndpoints()): Promise<EmulatorInfo> {
  const e = endpoints.emulator;
  if (!e) throw new Error('not talking to the GKE emulator');
  const res = await fetch(`http://${e.compute.host}:${e.compute.port}/emulator/info`);
  if (!res.ok)
    throw new Error(`the GKE emulator at ${e.compute.host}:${e.compute.port} answered ${res.status} to /emulator/info`);
  return (await res.json()) as EmulatorInfo;
}
