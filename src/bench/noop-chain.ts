// Workflow for `npm run bench` (section 2b): a chain of no-op activities, one after another,
// scheduled on the workflow's own task queue or on another one. Its result is the round trip of
// each activity as the workflow sees it: from the workflow task that scheduled it to the one
// that resumed after it (workflow time, replay-safe).
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
