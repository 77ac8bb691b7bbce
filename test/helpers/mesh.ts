import type { Client } from '@temporalio/client';
import type { ActivityDeps } from '../../src/activities/mesh-activities';
import { meshStatus } from '../../src/client';
import { sleep } from '../../src/util/net';
import type { MeshStatus } from '../../src/workflows/types';
import { LOCAL_TOOL_NAMES } from '../../src/local/tools';
import { TOOLS } from '../../src/tools/specs';
import { activityDeps } from '../../src/worker';
import { tool } from './env';

/** The worker's real adapters, on local clusters under `stateDir`, with the tools the global setup prepared. */
export function realDeps(stateDir: string): ActivityDeps {
  const names = [...LOCAL_TOOL_NAMES, ...TOOLS.filter((t) => t.istio).map((t) => t.name)];
  return activityDeps(stateDir, Object.fromEntries(names.map((n) => [n, tool(n)])));
}

/** Polls the mesh's status until its phase is one of `phases`; fails naming the steps not done after `timeoutMs`. */
export async function waitPhase(
  client: Client,
  mesh: string,
  phases: string[],
  timeoutMs = 150_000,
  pollMs = 300,
): Promise<MeshStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await meshStatus(client, mesh);
    if (phases.includes(s.phase)) return s;
    if (Date.now() > deadline)
      throw new Error(`mesh ${mesh} stuck in ${s.phase}: ${JSON.stringify(s.steps.filter((x) => x.state !== 'done'))}`);
    await sleep(pollMs);
  }
}
