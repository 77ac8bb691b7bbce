// The pinned tools a local cluster runs, by the names `ensureTools` knows them.
import path from 'node:path';
import { KWOK_CRDS, KWOK_STAGES } from '../tools/install';
import type { LocalTools } from './clusters';

/** What `ensureTools` must provide for local clusters with workloads and istiod. */
export const LOCAL_TOOL_NAMES = [
  'kube-apiserver',
  'etcd',
  'kube-controller-manager',
  'kube-scheduler',
  'kwok',
  'pilot-discovery',
] as const;

/** LocalTools from tool paths as `ensureTools` returns them. */
export function localTools(paths: Record<string, string>): LocalTools {
  return {
    kubeApiserver: paths['kube-apiserver'],
    etcd: paths.etcd,
    workloads: {
      kubeControllerManager: paths['kube-controller-manager'],
      kubeScheduler: paths['kube-scheduler'],
      kwok: paths.kwok,
      kwokStages: path.join(path.dirname(paths.kwok), KWOK_STAGES),
      kwokCrds: path.join(path.dirname(paths.kwok), KWOK_CRDS),
    },
    pilotDiscovery: paths['pilot-discovery'],
  };
}
