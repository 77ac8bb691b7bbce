import { ExistingProvider, LocalProvider, UnavailableProvider } from '../../src/adapters/providers';
import type { ActivityDeps } from '../../src/activities/mesh-activities';
import { tool } from './env';

/** The worker's real adapters, on local clusters under `stateDir`. */
export function realDeps(stateDir: string): ActivityDeps {
  return {
    stateDir,
    istioctl: tool('istioctl'),
    providers: {
      local: new LocalProvider(stateDir, { kubeApiserver: tool('kube-apiserver'), etcd: tool('etcd') }),
      existing: new ExistingProvider(),
      gke: new UnavailableProvider('gke'),
    },
  };
}
