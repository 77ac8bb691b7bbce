import type { Client } from '@temporalio/client';
import type { ActivityDeps } from '../../src/activities/mesh-activities';
import { sleep } from '../../src/util/net';
import type { MeshStatus } from '../../src/workflows/types';
import { LOCAL_TOOL_NAMES } from '../../src/local/tools';
import { TOOLS } from '../../src/tools/specs';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { meshStatus, teardownMesh } from '../../src/client';
import { type MeshWorker, activityDeps, createWorker } from '../../src/worker';
import { scratchDir, tool } from './env';
import { devServer } from './temporal';

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

/**
 * The rig of an end-to-end file: a dev server and a worker with the real adapters on local clusters
 * under a scratch state directory, started before the file's tests; after them, `mesh` is torn down
 * (if it still runs) and both are stopped. `decorate` wraps the real activities (fault injection).
 */
export function withRealWorker(
  label: string,
  mesh: string,
  decorate?: Parameters<typeof createWorker>[5],
): { env: () => TestWorkflowEnvironment; state: () => string } {
  let env: TestWorkflowEnvironment | undefined;
  let worker: MeshWorker | undefined;
  let running: Promise<void> | undefined;
  let state = '';
  beforeAll(async () => {
    env = await devServer();
    state = scratchDir(label);
    worker = await createWorker(env.nativeConnection, 'default', realDeps(state), label, {}, decorate);
    running = worker.run();
  });
  afterAll(async () => {
    if (env)
      await teardownMesh(env.client, mesh)
        .then((h) => h.result())
        .catch(() => undefined);
    worker?.shutdown();
    await running;
    await env?.teardown();
  }, 180_000);
  return { env: () => env!, state: () => state };
}
