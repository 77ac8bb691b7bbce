// Starts the simulated data plane beside a local cluster (load-balancer addresses for its
// LoadBalancer Services), once: local clusters get it from their provider, the GKE emulator's
// clusters from the emulator (GKE gives LoadBalancers their addresses itself).
import path from 'node:path';
import { packageRoot } from '../paths';
import { runningPid, startDaemon } from '../util/daemon';

/** What the data plane needs of a local cluster: its name, index (its address range) and kubeconfig. */
export interface SimulatedCluster {
  name: string;
  index: number;
  kubeconfig: string;
}

export function startSimulatedDataPlane(local: SimulatedCluster): void {
  const dir = path.dirname(local.kubeconfig);
  const pidFile = path.join(dir, 'simulated-data-plane.pid');
  if (runningPid(pidFile, dir) !== undefined) return;
  startDaemon({
    file: process.execPath,
    args: [path.join(packageRoot, 'dist', 'sim', 'daemon.js'), local.name, String(local.index), local.kubeconfig],
    pidFile,
    marker: dir,
  });
}
