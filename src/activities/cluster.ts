// create-cluster: a cluster from its provider. The cluster is tracked before it is asked for, so
// a create that fails half-way (a directory and etcd keys made, an API server that never came
// up) is deleted by compensation like a finished one.
import type { StepRequest, StepOutcome } from '../steps/contract';
import { type ActivityDeps, clusterOf } from './deps';
import { runStep } from './step';

export function clusterActivities(deps: ActivityDeps) {
  return {
    createCluster: (req: StepRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const c = clusterOf(req.spec, req.step.cluster!);
        if (c.provider !== 'existing') ctx.track({ type: 'cluster', cluster: c.name, provider: c.provider });
        await deps.providers[c.provider].create(req.mesh, c, ctx);
        return {};
      }),
  };
}
