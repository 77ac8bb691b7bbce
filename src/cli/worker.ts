// `meshflow worker`: a meshflow worker in the foreground, against the Temporal the environment names
// (TEMPORAL_ADDRESS, TLS, API key): what a container, a systemd unit or a second machine runs. It
// starts no dev server: a worker next to nothing would wait forever, and local mode starts its own
// background worker anyway. SIGTERM or SIGINT stop it gracefully: no new tasks are taken, and
// running activities get the grace period to finish before they are cancelled (a cancelled step is
// retried, resuming from its heartbeat, when the worker is back).
import { NativeConnection } from '@temporalio/worker';
import { hostId, hostTaskQueue } from '../activities/host';
import { connectionOptions, describeConnection } from '../temporal/connection-options';
import { connectionError, temporalTarget } from '../temporal/connection';
import { parseDuration } from '../spec/duration';
import { TASK_QUEUE } from '../workflows/definitions';
import { createWorker, productionDeps, workerDeploymentFromEnv } from '../worker';

export interface RunWorkerOptions {
  /** How long running activities may take to finish after SIGTERM/SIGINT before they are cancelled. */
  shutdownGraceMs: number;
  /** One line a human reads (stderr by default). */
  log?: (line: string) => void;
}

export async function runWorker(opts: RunWorkerOptions): Promise<void> {
  const log =
    opts.log ?? ((line: string) => process.stderr.write(`${new Date().toISOString()} meshflow worker: ${line}\n`));
  const target = temporalTarget();
  const options = connectionOptions(target.address);
  const where = describeConnection(options);
  const connection = await NativeConnection.connect(options).catch(async (err: unknown) => {
    throw await connectionError(options, err);
  });
  try {
    const deps = await productionDeps();
    const worker = await createWorker(connection, target.namespace, deps, TASK_QUEUE, {
      shutdownGraceTime: opts.shutdownGraceMs,
      // Past the grace period and 10 s more, stop anyway: a stuck activity must not keep the process up.
      shutdownForceTime: opts.shutdownGraceMs + 10_000,
    });
    const hostQueue = hostTaskQueue(TASK_QUEUE, hostId(deps.stateDir));
    const version = workerDeploymentFromEnv()?.version;
    const build = version ? `; build ${version.buildId} of deployment ${version.deploymentName} (meshes pinned)` : '';
    log(
      `connected to ${where}, namespace ${target.namespace}; ` +
        `polling task queues ${TASK_QUEUE} and ${hostQueue}${build}`,
    );
    const stop = (signal: NodeJS.Signals) => {
      log(`${signal}: stopping; running activities get ${opts.shutdownGraceMs / 1000}s to finish`);
      worker.shutdown();
    };
    process.once('SIGTERM', stop).once('SIGINT', stop);
    try {
      await worker.run();
    } finally {
      process.off('SIGTERM', stop).off('SIGINT', stop);
    }
    log('stopped');
  } finally {
    await connection.close();
  }
}

/** `meshflow worker [--shutdown-grace 30s]`. */
export async function workerCommand(opts: { shutdownGrace: string }): Promise<void> {
  const ms = parseDuration(opts.shutdownGrace);
  if (ms === undefined) throw new Error(`--shutdown-grace ${opts.shutdownGrace}: not a duration (e.g. 0s, 30s, 5m)`);
  await runWorker({ shutdownGraceMs: ms });
}

// `node dist/cli/worker.js` is `meshflow worker --shutdown-grace 0s`: local mode's background worker
// stops at once (its supervisor waits 10 s), and a cancelled step resumes when it is back.
if (require.main === module) {
  runWorker({ shutdownGraceMs: 0 }).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
