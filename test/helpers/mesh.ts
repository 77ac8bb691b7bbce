import type { ActivityDeps } from '../../src/activities/mesh-activities';
import { activityDeps } from '../../src/worker';
import { tool } from './env';

/** The worker's real adapters, on local clusters under `stateDir`, with the tools the global setup prepared. */
export function realDeps(stateDir: string): ActivityDeps {
  return activityDeps(stateDir, {
    'kube-apiserver': tool('kube-apiserver'),
    etcd: tool('etcd'),
    istioctl: tool('istioctl'),
  });
}
