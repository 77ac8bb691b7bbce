// Local mode for the CLI: Temporal and a worker on this machine, started in the background when
// they are not there yet, so `meshflow up` works with nothing else running.
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { packageRoot, stateDir } from '../paths';
import { connectOrStartLocal, type TemporalTarget } from '../temporal/connection';
import { ensureTools } from '../tools/install';
import { runningPid, startDaemon } from '../util/daemon';
import { sleep } from '../util/net';
import { type Progress, stderrProgress } from '../util/progress';
import { TASK_QUEUE } from '../workflows/definitions';

export async function connect(progress: Progress = stderrProgress): Promise<{ client: Client; target: TemporalTarget; startedServer: boolean }> {
  const { client, started, target } = await connectOrStartLocal({
    stateDir: stateDir(),
    temporalBin: async () => (await ensureTools(['temporal'], progress)).temporal,
    progress,
  });
  return { client, target, startedServer: started };
}

/**
 * Makes sure a worker polls the meshflow task queue. On this machine's Temporal, that is our
 * background worker, started when its process is not running: Temporal lists a stopped worker's
 * pollers for minutes after it is gone, so pollers alone would wait on a dead worker. Elsewhere,
 * any poller will do.
 */
export async function ensureWorker(client: Client, target: TemporalTarget, progress: Progress = stderrProgress): Promise<void> {
  const dir = path.join(stateDir(), 'worker');
  const pidFile = path.join(dir, 'worker.pid');
  const onThisMachine = /^(127\.0\.0\.1|localhost|\[::1\]):/.test(target.address);
  if (!onThisMachine && (await hasPollers(client, target.namespace))) return;
  if (runningPid(pidFile, dir) === undefined) {
    await ensureTools(['kube-apiserver', 'etcd', 'istioctl'], progress);
    progress(`no meshflow worker polls task queue "${TASK_QUEUE}": starting one in the background (log: ${path.join(dir, 'worker.log')})`);
    startDaemon({
      file: process.execPath,
      // The worker ignores --marker; it lets the PID check recognise this process.
      args: [path.join(packageRoot, 'dist', 'worker.js'), `--marker=${dir}`],
      pidFile,
      marker: dir,
      env: { ...process.env, TEMPORAL_ADDRESS: target.address, TEMPORAL_NAMESPACE: target.namespace },
    });
  }
  const deadline = Date.now() + 60_000;
  while (!(await hasPollers(client, target.namespace))) {
    if (Date.now() > deadline || runningPid(pidFile, dir) === undefined) throw new Error(`the meshflow worker did not start; see ${path.join(dir, 'worker.log')}`);
    await sleep(500);
  }
}

async function hasPollers(client: Client, namespace: string): Promise<boolean> {
  const r = await client.workflowService.describeTaskQueue({ namespace, taskQueue: { name: TASK_QUEUE, kind: 1 }, taskQueueType: 1 });
  return (r.pollers ?? []).length > 0;
}

/** Connects, and makes sure a worker is there to run what the command asks (queries, updates, steps). */
export async function connectWithWorker(progress: Progress = stderrProgress): Promise<{ client: Client; target: TemporalTarget }> {
  const { client, target } = await connect(progress);
  await ensureWorker(client, target, progress);
  return { client, target };
}
