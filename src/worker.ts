// The meshflow worker: runs the mesh workflow and its activities. Started by `meshflow up` in
// local mode, or by hand (`node dist/worker.js`) next to a shared Temporal cluster: add workers to
// scale out; Temporal spreads the work.
import { NativeConnection, Worker } from '@temporalio/worker';
import { createActivities } from './activities/mesh-activities';
import type { ActivityDeps } from './activities/mesh-activities';
import { ExistingProvider, LocalProvider, UnavailableProvider } from './adapters/providers';
import { stateDir as defaultStateDir } from './paths';
import { temporalTarget } from './temporal/connection';
import { ensureTools } from './tools/install';
import { TASK_QUEUE } from './workflows/definitions';

export async function productionDeps(stateDir = defaultStateDir()): Promise<ActivityDeps> {
  return activityDeps(stateDir, await ensureTools(['kube-apiserver', 'etcd', 'istioctl']));
}

/** The real adapters: local clusters under `stateDir`, existing clusters, the pinned istioctl. */
export function activityDeps(stateDir: string, tools: Record<string, string>): ActivityDeps {
  return {
    stateDir,
    istioctl: tools.istioctl,
    providers: {
      local: new LocalProvider(stateDir, { kubeApiserver: tools['kube-apiserver'], etcd: tools.etcd }),
      existing: new ExistingProvider(),
      gke: new UnavailableProvider('gke'),
    },
  };
}

/**
 * Settings every meshflow worker runs with. A cancel (`down` while provisioning) reaches a running
 * activity only with the answer to one of its heartbeats, and the SDK sends those at most every
 * 80% of the heartbeat timeout (48 s for a 1-minute timeout) unless told otherwise: 5 s keeps a
 * cancel prompt for a handful of extra RPCs per long step.
 */
export const WORKER_TUNING = { maxHeartbeatThrottleInterval: '5s' } as const;

export async function createWorker(connection: NativeConnection, namespace: string, deps: ActivityDeps, taskQueue = TASK_QUEUE): Promise<Worker> {
  return Worker.create({
    ...WORKER_TUNING,
    connection,
    namespace,
    taskQueue,
    workflowsPath: require.resolve('./workflows'),
    activities: createActivities(deps),
  });
}

async function main(): Promise<void> {
  const target = temporalTarget();
  const connection = await NativeConnection.connect({ address: target.address });
  const worker = await createWorker(connection, target.namespace, await productionDeps());
  await worker.run();
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
