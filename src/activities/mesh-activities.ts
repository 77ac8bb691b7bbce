// The mesh workflow's activities, built by a factory from adapters (cluster providers and the
// istioctl path), so tests swap adapters and never Temporal. One module per step kind; each
// activity runs inside runStep (./step.ts), which tracks what it creates, heartbeats and honours
// cancellation. Every activity is idempotent: names are derived from the mesh, objects are
// server-side applied, CAs are reused when present.
import { meshRootCertificate } from '../istio/trust';
import { upgradeSpec } from '../spec/upgrade';
import { meshEntries } from '../trust-store/store';
import type { StepOutcome, StepRequest, UndoRequest, VerifyRequest } from '../steps/contract';
import { addonActivities } from './addons';
import { appActivities } from './apps';
import { clusterActivities } from './cluster';
import { controlPlaneActivities } from './control-plane';
import { type ActivityDeps, accessAll } from './deps';
import { driftActivities } from './drift';
import { linkActivities } from './link';
import { membershipActivities } from './membership';
import { rotationActivities } from './rotation';
import { runStep } from './step';
import { kubeTraffic } from '../checks/traffic';
import { trustActivities } from './trust';
import type { MeshActivities } from './types';
import { undoActivities } from './undo';
import { upgradeActivities } from './upgrade';
import { verifyMesh } from '../checks/verify';

export type { ActivityDeps } from './deps';

export function createActivities(deps: ActivityDeps): MeshActivities {
  const activities: MeshActivities = {
    ...clusterActivities(deps),
    ...trustActivities(deps),
    ...controlPlaneActivities(deps),
    ...linkActivities(deps),
    ...appActivities(deps),
    ...addonActivities(deps),
    verifyMesh: (req: VerifyRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => ({
        checks: await verifyMesh(
          req.spec,
          await accessAll(deps, req.spec),
          deps.traffic ?? kubeTraffic,
          ctx.heartbeat,
          {
            signal: ctx.signal,
            istioctl: (await deps.istio(req.spec.istio.version, ctx)).istioctl,
            meshRoot: await meshRootCertificate(meshEntries(deps.trustStore, req.mesh), req.spec.trust, ctx.signal),
            ...(req.only?.length ? { only: req.only } : {}),
          },
        ),
      })),
    ...undoActivities(deps),
    ...membershipActivities(deps),
    ...rotationActivities(deps),
    ...driftActivities(deps),
    ...upgradeActivities(deps),
  };
  // Activities scheduled by a workflow of an earlier build carry that build's spec: fill in what it lacks.
  return Object.fromEntries(
    Object.entries(activities).map(([name, fn]) => [
      name,
      (req: StepRequest | UndoRequest) =>
        (fn as (r: typeof req) => Promise<unknown>)({ ...req, spec: upgradeSpec(req.spec) }),
    ]),
  ) as unknown as MeshActivities;
}
