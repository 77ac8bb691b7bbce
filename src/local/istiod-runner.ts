// What a provider that runs istiod itself, beside its clusters, offers the activities: local
// clusters and the GKE emulator's, whose pods kwok plays, so no in-cluster istiod serves them.
import type { ClusterSpec } from '../spec/schema';
import type { IstiodEndpoint, IstiodOptions } from './clusters';

/** A provider that runs istiod itself, beside the cluster (local clusters): no in-cluster istiod serves it. */
export interface IstiodRunner {
  /**
   * Where the cluster's istiod of `revision` (undefined: Istio's default revision) answers once
   * started; the ports are chosen now and kept.
   */
  istiodEndpoint(mesh: string, cluster: ClusterSpec, revision?: string): Promise<IstiodEndpoint>;
  /** Runs the cluster's istiod of `opts.revision` (each revision its own process), unless it runs. */
  startIstiod(mesh: string, cluster: ClusterSpec, opts: IstiodOptions): Promise<IstiodEndpoint>;
  /** Stops the cluster's istiod of `revision` and forgets it (an upgrade removed or rolled back that revision). */
  stopIstiod(mesh: string, cluster: ClusterSpec, revision: string | undefined): Promise<void>;
  /** Which revision's istiod serves the cluster's workloads, as the checks should ask it (its tag moved). */
  serveRevision(mesh: string, cluster: ClusterSpec, revision: string | undefined): Promise<void>;
  /**
   * Replaces the plugged-in CA files of the cluster's istiod (which reloads them); where it answers,
   * or undefined when meshflow has not started one for the cluster.
   */
  updateCacerts(
    mesh: string,
    cluster: ClusterSpec,
    cacerts: Record<string, string>,
  ): Promise<IstiodEndpoint | undefined>;
}
