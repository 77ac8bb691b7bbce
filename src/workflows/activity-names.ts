// Which activity runs each kind of step: shared by the workflow, which schedules them by name,
// and the test doubles, which serve them all. Values with no I/O, so workflow code may import it.
import type { MeshActivities } from '../activities/types';
import type { StepKind } from '../plan/plan';
import type { StepOutcome, StepRequest } from '../steps/contract';

/** The activities that run a step of the plan (the others undo, serve an update, or look for drift). */
export type StepActivityName = Exclude<
  keyof MeshActivities,
  | 'undoResource'
  | 'awaitClusterForgotten'
  | 'baselineDrift'
  | 'checkDrift'
  | 'rotateIntermediate'
  | 'addRoot'
  | 'retireRoots'
  | 'refreshTrust'
  | 'installRevision'
  | 'switchRevision'
  | 'stopRevision'
>;

/** The activity that runs each kind of step. */
export const STEP_ACTIVITIES: Record<StepKind, StepActivityName> = {
  preflight: 'preflightMesh',
  'create-cluster': 'createCluster',
  firewall: 'createFirewall',
  'root-ca': 'createRootCa',
  cacerts: 'installCacerts',
  'control-plane': 'installControlPlane',
  'eastwest-gateway': 'installEastWestGateway',
  'expose-services': 'exposeServices',
  'expose-istiod': 'exposeIstiod',
  link: 'linkClusters',
  'deploy-app': 'deployApp',
  addons: 'installAddons',
  verify: 'verifyMesh',
};

/** Every step activity served by one function (test doubles). */
export function everyStep(fn: (req: StepRequest) => Promise<StepOutcome>): Record<StepActivityName, typeof fn> {
  return Object.fromEntries(Object.values(STEP_ACTIVITIES).map((name) => [name, fn])) as Record<
    StepActivityName,
    typeof fn
  >;
}
