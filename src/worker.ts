// The meshflow worker: runs the mesh workflow and its activities. Started by `meshflow up` in
// local mode, or by hand (`meshflow worker`) next to a shared Temporal cluster: add workers to
// scale out; Temporal spreads the work.
import { Client } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createSweepActivities } from './sweep/activities';
import { hostActivities, hostId, hostTaskQueue } from './activities/host';
import { createActivities } from './activities/mesh-activities';
import type { ActivityDeps } from './activities/mesh-activities';
import type { MeshActivities } from './activities/types';
import { entryBundlerOptions, loadProviderModules, workflowsEntry } from './providers/load';
import { providerRuntimes } from './providers/runtimes';
import { LOCAL_TOOL_NAMES } from './local/tools';
import { stateDir as defaultStateDir } from './paths';
import { dataConverter } from './temporal/codec';
import type { TrustStore } from './trust-store/store';
import { trustStoreFromEnv } from './trust-store/from-env';
import { ensureTools } from './tools/install';
import { istioToolsOf } from './tools/istio-builds';
import { TASK_QUEUE } from './workflows/definitions';

export async function productionDeps(stateDir = defaultStateDir()): Promise<ActivityDeps> {
  return activityDeps(stateDir, await ensureTools([...LOCAL_TOOL_NAMES, 'istioctl']));
}

/**
 * The real adapters: every registered provider's runtime (providers/runtimes.ts), the Istio
 * builds (the default line's from `tools`, another line's built on first use), and the trust
 * store MESHFLOW_TRUST_STORE names (read now: a wrong value stops the worker before it polls).
 */
export function activityDeps(
  stateDir: string,
  tools: Record<string, string>,
  trustStore: TrustStore = trustStoreFromEnv(stateDir),
): ActivityDeps {
  loadProviderModules(); // MESHFLOW_PROVIDERS: registered before their runtimes are built
  return {
    stateDir,
    istio: istioToolsOf(tools),
    trustStore,
    providers: providerRuntimes({ stateDir, tools, trustStore }),
  };
}

/**
 * Settings every meshflow worker runs with. A cancel (`down` while provisioning) reaches a running
 * activity only with the answer to one of its heartbeats, and the SDK sends those at most every
 * 80% of the heartbeat timeout (48 s for a 1-minute timeout) unless told otherwise: 5 s keeps a
 * cancel prompt for a handful of extra RPCs per long step.
 */
export const WORKER_TUNING = { maxHeartbeatThrottleInterval: '1s' } as const;

/**
 * A meshflow worker is two Temporal workers in one process: one on the shared task queue (mesh
 * workflows, and the host claim that binds a new mesh to this host), one on this host's own queue
 * (the mesh's steps, which need this host's state). Run, stop and wait for both together.
 */
export class MeshWorker {
  constructor(
    readonly shared: Worker,
    readonly host: Worker,
  ) {}

  async run(): Promise<void> {
    await Promise.all([this.shared.run(), this.host.run()]);
  }

  shutdown(): void {
    for (const w of [this.shared, this.host]) if (w.getState() === 'RUNNING') w.shutdown();
  }

  /** Runs both workers until `fn` settles, then stops them. */
  async runUntil<R>(fn: () => Promise<R>): Promise<R> {
    const running = this.run();
    try {
      return await fn();
    } finally {
      this.shutdown();
      await running;
    }
  }
}

/**
 * Worker Versioning, opt-in: MESHFLOW_BUILD_ID names this worker's build in the Worker Deployment
 * MESHFLOW_DEPLOYMENT (default meshflow). Mesh workflows are then pinned to the build that started
 * them, their steps and undos included, while new meshes go to the deployment's current version
 * (`temporal worker deployment set-current-version`). Unset: an unversioned worker, as before, and
 * changes in place stay behind patched() (docs/development.md, "Changing the workflow").
 */
export function workerDeploymentFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): WorkerOptions['workerDeploymentOptions'] {
  const buildId = env.MESHFLOW_BUILD_ID?.trim();
  if (!buildId) return undefined;
  return {
    useWorkerVersioning: true,
    version: { deploymentName: env.MESHFLOW_DEPLOYMENT?.trim() || 'meshflow', buildId },
    defaultVersioningBehavior: 'PINNED',
  };
}

export async function createWorker(
  connection: NativeConnection,
  namespace: string,
  deps: ActivityDeps,
  taskQueue = TASK_QUEUE,
  shutdown: Pick<WorkerOptions, 'shutdownGraceTime' | 'shutdownForceTime'> = {},
  /** Wraps the activities (tests inject faults into real steps this way). */
  decorate: (activities: MeshActivities) => MeshActivities = (a) => a,
): Promise<MeshWorker> {
  const activities = decorate(createActivities(deps));
  const host = hostId(deps.stateDir);
  const hostQueue = hostTaskQueue(taskQueue, host);
  const converter = dataConverter();
  const workerDeploymentOptions = workerDeploymentFromEnv();
  const common = {
    ...WORKER_TUNING,
    ...shutdown,
    connection,
    namespace,
    dataConverter: converter,
    ...(workerDeploymentOptions ? { workerDeploymentOptions } : {}),
  };
  const workflows = require.resolve('./workflow-bundle');
  const entry = workflowsEntry(workflows);
  return new MeshWorker(
    await Worker.create({
      ...common,
      taskQueue,
      workflowsPath: entry,
      ...entryBundlerOptions(entry, workflows),
      activities: {
        ...activities,
        ...hostActivities({ host, taskQueue: hostQueue, sharedTrust: deps.trustStore.shared }),
        // The sweep schedule's workflow reads the open meshes through these.
        ...createSweepActivities(new Client({ connection, namespace, dataConverter: converter })),
      },
    }),
    await Worker.create({ ...common, taskQueue: hostQueue, activities }),
  );
}
