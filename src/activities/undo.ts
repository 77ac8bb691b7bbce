// The undo of every resource a step created: a cluster through its provider, objects only when
// they carry this mesh's labels (and CRDs only when no one else's resources still use them),
// files only inside the state directory. Each object deleted is reported in a heartbeat.
import fs from 'node:fs';
import path from 'node:path';
import { describeRef } from '../adapters/kube';
import type { Kube } from '../adapters/kube';
import type { UndoOutcome, UndoRequest } from '../steps/contract';
import { ClusterGoneError, PermanentError } from '../util/errors';
import { type ActivityDeps, clusterOf, kubeOf, runtimeOf } from './deps';
import { runStep } from './step';

/** Removes `dir` and then each parent that is left empty, up to (not including) `root`. */
function removeUpTo(dir: string, root: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  for (let d = path.dirname(dir); d.startsWith(root + path.sep); d = path.dirname(d)) {
    try {
      fs.rmdirSync(d); // only when empty
    } catch {
      return;
    }
  }
}

export function undoActivities(deps: ActivityDeps) {
  return {
    async undoResource(req: UndoRequest): Promise<UndoOutcome> {
      const untouched: UndoOutcome['untouched'] = [];
      await runStep(async (ctx) => {
        const r = req.resource;
        if (r.type === 'cluster') {
          await runtimeOf(deps, clusterOf(req.spec, r.cluster).provider).delete(
            req.mesh,
            clusterOf(req.spec, r.cluster),
            ctx,
          );
        } else if (r.type === 'firewall') {
          const rules = runtimeOf(deps, r.provider ?? 'gke').networkRules;
          if (!rules) throw new PermanentError(`this worker's provider ${r.provider ?? 'gke'} makes no network rules`);
          await rules.delete(req.mesh, r, ctx);
        } else if (r.type === 'file') {
          const root = path.resolve(deps.stateDir);
          const target = path.resolve(r.path);
          if (!target.startsWith(root + path.sep)) {
            throw new PermanentError(
              `refusing to delete ${r.path}: meshflow deletes files only inside its state directory ${root}`,
            );
          }
          removeUpTo(target, path.join(root, 'meshes'));
        } else if (r.type === 'trust') {
          await deps.trustStore.deleteMesh(r.mesh, ctx.signal);
        } else {
          let k: Kube;
          try {
            k = await kubeOf(deps, req.spec, r.cluster, ctx.signal);
          } catch (err) {
            // Only a cluster its provider knows to be deleted took these objects with it. One that
            // cannot be reached (an existing cluster's kubeconfig gone, its API down) still holds
            // them: the undo is retried, and then the mesh reports them as left behind, with why.
            if (err instanceof ClusterGoneError) return {};
            throw new Error(
              `cannot reach cluster ${r.cluster} to remove ${r.objects.length} object(s): ${(err as Error).message}`,
            );
          }
          for (const u of await k.deleteOwned(req.mesh, r.objects, ctx.heartbeat)) {
            untouched.push({ cluster: r.cluster, object: describeRef(u.ref), reason: u.reason });
          }
        }
        return {};
      });
      return { untouched };
    },
  };
}
