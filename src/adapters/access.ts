// How meshflow reaches a cluster, whatever provider made it: what every provider's `access` answers
// and what preflight, the activities and the checks are given.
import type { IstiodEndpoint } from '../local/clusters';

export interface ClusterAccess {
  /** The kubeconfig file; with `config`, only the path the spec named (for messages). */
  kubeconfig: string;
  /**
   * The kubeconfig itself, held in memory only: an existing cluster's, as `up` copied it into the
   * trust store (its named context only). Programs that need a file get a private copy.
   */
  config?: string;
  context?: string;
  /** The API server address other clusters use (remote secrets point here). */
  apiServer: string;
  /** Base64 PEM of the CA that signs the API server's certificate. */
  caData: string;
  /** A cluster on this machine: its API address is reachable from the other local clusters only. */
  local: boolean;
  /**
   * A bearer token for the API, held in memory only (GKE: a Google access token, refreshed by the
   * provider); the kubeconfig file then carries none.
   */
  token?: string;
  /** An istiod meshflow runs on this machine for the cluster (local primaries), while it runs. */
  istiod?: IstiodEndpoint & { running: boolean; log: string };
}
