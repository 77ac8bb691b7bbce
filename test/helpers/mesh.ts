import type { ActivityDeps } from '../../src/activities/mesh-activities';
import { LOCAL_TOOL_NAMES } from '../../src/local/tools';
import { activityDeps } from '../../src/worker';
import { tool } from './env';

/** The worker's real adapters, on local clusters under `stateDir`, with the tools the global setup prepared. */
export function realDeps(stateDir: string): ActivityDeps {
  return activityDeps(stateDir, Object.fromEntries([...LOCAL_TOOL_NAMES, 'istioctl'].map((n) => [n, tool(n)])));
}
