// `meshflow gc`: finds what meshflow left behind for meshes that have no open workflow, and
// removes it (./collect.ts), searching Kubernetes (./kube.ts), this machine (./local.ts) and the
// clouds of providers that have a GarbageSearch (GKE: providers/gke/garbage.ts).
export { collectGarbage } from './collect';
export { gcClusterOptions, meshIsOpen, renderGc, temporalIsOpen } from './cli';
export { localClusterOwners } from './local';
export {
  type GcAction,
  type GcCluster,
  type GcFinding,
  type GcKind,
  type GcOptions,
  GcRefused,
  type GcResult,
} from './types';
