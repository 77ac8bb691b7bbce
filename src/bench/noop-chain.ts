// Workflows for `npm run bench`: a chain of no-op activities, one after another, scheduled on the
// workflow's own task queue or on another one (section 2b); a plan's steps as no-ops (section 2's
// floor). Each returns the round trip of every activity as the workflow sees it: from the workflow
// task that scheduled it to the one that resumed after it (workflow time, replay-safe).
import { proxyActivities } from '@temporalio/workflow';

export interface NoopActivities {
  noop(): Promise<void>;
}

export async function noopChain(count: number, activityTaskQueue?: string): Promise<number[]> {
  const { noop } = proxyActivities<NoopActivities>({
    startToCloseTimeout: '30 seconds',
    ...(activityTaskQueue ? { taskQueue: activityTaskQueue } : {}),
  });
  const roundTrips: number[] = [];
  let last = Date.now();
  for (let i = 0; i < count; i++) {
    await noop();
    const now = Date.now();
    roundTrips.push(now - last);
    last = now;
  }
  return roundTrips;
}

/**
 * The steps of a plan as no-op activities, each started once what it depends on is done (as the
 * mesh workflow walks its plan), with nothing else: the floor for that plan's shape. Returns each
 * step's time from the workflow task that scheduled it to the one that resumed after it.
 */
export async function noopPlan(
  steps: Array<{ id: string; dependsOn: string[] }>,
  activityTaskQueue?: string,
): Promise<number[]> {
  const { noop } = proxyActivities<NoopActivities>({
    startToCloseTimeout: '30 seconds',
    ...(activityTaskQueue ? { taskQueue: activityTaskQueue } : {}),
  });
  const done = new Set<string>();
  const started = new Set<string>();
  const running = new Map<string, Promise<void>>();
  const samples: number[] = [];
  for (;;) {
    for (const step of steps) {
      if (started.has(step.id) || !step.dependsOn.every((d) => done.has(d))) continue;
      started.add(step.id);
      const at = Date.now();
      running.set(
        step.id,
        noop().then(() => {
          samples.push(Date.now() - at);
          done.add(step.id);
          running.delete(step.id);
        }),
      );
    }
    if (!running.size) return samples;
    await Promise.race(running.values());
  }
}
