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

export async function createWorker(connection: NativeConnection, namespace: string, deps: ActivityDeps, taskQueue = TASK_QUEUE): Promise<Worker> {
  return Worker.create({
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
