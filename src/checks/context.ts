// What every check gets from verifyMesh: the mesh, its plan, API clients of each cluster (shared
// keep-alive connections, request timeouts, the activity's cancellation), the retrying runner of a
// verdict, and what several checks read once per verification.
import type * as k8s from '@kubernetes/client-node';
import type { Heartbeat } from '../adapters/kube';
import type { ClusterAccess } from '../adapters/providers';
import type { Plan } from '../plan/plan';
import type { MeshSpec } from '../spec/schema';
import type { CheckResult } from '../steps/contract';
import type { Call, Verdict } from './result';
import type { Clients, Options } from './run';
import type { SampleLayout } from './sample-layout';
import type { TrafficPort } from './traffic';

export interface CheckContext {
  spec: MeshSpec;
  plan: Plan;
  access: (cluster: string) => ClusterAccess;
  /** A cluster's kubeconfig, for the port-forwards to its istiod and istioctl. */
  kubeConfig: (cluster: string) => k8s.KubeConfig;
  api: Record<string, Clients>;
  /** API clients for another kubeconfig (a remote secret's reader), on this verification's connections. */
  clientsFor: (kc: k8s.KubeConfig) => Clients;
  /** Runs one check's verdict, retrying transient errors within its budget; `name` is the catalog's. */
  check: (name: string, cluster: string | undefined, fn: (call: Call) => Promise<Verdict>) => Promise<CheckResult>;
  /** The cluster's istio-system/cacerts, or why it is absent (the API's 404), read once however many checks ask. */
  cacerts: (cluster: string, call: Call) => Promise<{ secret?: k8s.V1Secret; absent?: string }>;
  /** The sample's namespaces, Services and serving clusters, as the spec places them. */
  layout: SampleLayout;
  /** How the traffic checks reach pods and ingress gateways. */
  traffic: TrafficPort;
  heartbeat: Heartbeat;
  options: Options;
  /** The pinned istioctl, for `analyze`; without it that check is not run. */
  istioctl?: string;
  /** The mesh's root certificate (PEM, from the trust store), for `trust-chain`. */
  meshRoot?: string;
  signal?: AbortSignal;
}
