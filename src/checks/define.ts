// How a domain module binds a check of the catalog to what it does: over which targets it runs
// (every cluster, some clusters, each link, the mesh once) and the verdict for one target. The
// registry (./registry.ts) lists the bound checks in the order verify reports them.
import type { ClusterSpec } from '../spec/schema';
import type { CheckResult } from '../steps/contract';
import { type CheckInfo, checkByCode } from './catalog';
import type { CheckContext } from './context';
import type { Call, Verdict } from './result';
import { allSettledInOrder } from '../util/limit';

export interface CheckImpl {
  code: string;
  /** The check's results over the mesh, one per target; none where it does not apply. */
  run(ctx: CheckContext): Promise<CheckResult[]>;
}

export function catalogEntry(code: string): CheckInfo {
  const info = checkByCode(code);
  if (!info) throw new Error(`check ${code} is not in the catalog (src/checks/catalog.ts)`);
  return info;
}

/** A check with one result per target; `cluster` is where a target's result is reported. */
export function eachTarget<T>(
  code: string,
  targets: (ctx: CheckContext) => T[],
  cluster: (target: T) => string | undefined,
  verdict: (ctx: CheckContext, target: T, call: Call) => Promise<Verdict>,
): CheckImpl {
  const { name } = catalogEntry(code);
  return {
    code,
    // The targets are judged at once (ctx.check bounds how many verdicts run together); their
    // results keep the targets' order.
    run: (ctx) =>
      allSettledInOrder(
        targets(ctx).map((t) => {
          const where = cluster(t);
          return ctx.check(name, where, (call) => {
            ctx.heartbeat({ verifying: where ? `${name} (${where})` : name });
            return verdict(ctx, t, call);
          });
        }),
      ),
  };
}

/** A check run on each cluster `which` selects. */
export function eachCluster(
  code: string,
  which: (ctx: CheckContext, c: ClusterSpec) => boolean,
  verdict: (ctx: CheckContext, c: ClusterSpec, call: Call) => Promise<Verdict>,
): CheckImpl {
  return eachTarget(
    code,
    (ctx) => ctx.spec.clusters.filter((c) => which(ctx, c)),
    (c) => c.name,
    verdict,
  );
}

/** A check with one result for the whole mesh. */
export function onceForMesh(code: string, verdict: (ctx: CheckContext, call: Call) => Promise<Verdict>): CheckImpl {
  return eachTarget(
    code,
    () => [undefined],
    () => undefined,
    (ctx, _t, call) => verdict(ctx, call),
  );
}

export const everyCluster = () => true;
