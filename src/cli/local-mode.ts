// Local mode for the CLI: Temporal and a worker on this machine, started in the background when
// they are not there yet, so `meshflow up` works with nothing else running.
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { packageRoot, stateDir } from '../paths';
import {
  connectOrStartLocal,
  localAddress,
  pollersOf,
  pollsFromPid,
  type StartWait,
  type TemporalTarget,
} from '../temporal/connection';
import { readRecord, teamServerRunning } from '../team/deployment';
import { LOCAL_TOOL_NAMES } from '../local/tools';
import { ensureTools } from '../tools/install';
import { logTail, runningPid, startSupervisedDaemon, supervisedPid } from '../util/daemon';
import { sleep } from '../util/net';
import { type Progress, stderrProgress } from '../util/progress';
import { TASK_QUEUE } from '../workflows/definitions';

export async function connect(
  progress: Progress = stderrProgress,
  wait?: StartWait,
): Promise<{ client: Client; target: TemporalTarget; startedServer: boolean }> {
  const { client, started, target } = await connectOrStartLocal({
    stateDir: stateDir(),
    // On a fresh machine the worker's tools are built beside the server's, not after it.
    temporalBin: async () =>
      (await ensureTools(['temporal'], progress, { alongside: [...LOCAL_TOOL_NAMES, 'istioctl'] })).temporal,
    progress,
    wait,
  });
  return { client, target, startedServer: started };
}

/**
 * The background worker's files in the state directory (its PID file holds its supervisor's PID).
 * One worker per Temporal target: local mode's own dev server has `worker/`, any other Temporal on
 * this machine (a dev server of the user's, on another port or namespace) a folder of its own, so a
 * command never waits on a worker that polls another server.
 */
export function workerFiles(target?: TemporalTarget): { dir: string; pidFile: string; log: string } {
  const own = !target || (target.address === localAddress() && target.namespace === 'default');
  const dir = own
    ? path.join(stateDir(), 'worker')
    : path.join(stateDir(), 'worker', 'targets', `${target.address}-${target.namespace}`.replace(/[^\w.-]/g, '_'));
  return { dir, pidFile: path.join(dir, 'worker.pid'), log: path.join(dir, 'worker.log') };
}

function onThisMachine(target: TemporalTarget): boolean {
  return /^(127\.0\.0\.1|localhost|\[::1\]):/.test(target.address);
}

/**
 * Whether the workers of `target` are started by someone else, so a command must never start one
 * of its own: MESHFLOW_WORKERS=external (what `meshflow team` gives its API), or the address is
 * that of this machine's team deployment while its server runs (its record, team.json, names it).
 */
export function workersAreExternal(target: TemporalTarget): boolean {
  if (process.env.MESHFLOW_WORKERS === 'external') return true;
  // A deployment that is down (its record stays) leaves the address to local mode.
  return readRecord()?.address === target.address && teamServerRunning();
}

/**
 * Makes sure a worker polls the meshflow task queue. On this machine's Temporal, that is our
 * background worker, started when its process is not running: Temporal lists a stopped worker's
 * pollers for minutes after it is gone, so pollers alone would wait on a dead worker. Elsewhere,
 * any poller will do.
 *
 * The background worker runs under a supervisor (src/util/daemon.ts) that restarts it when it
 * exits abnormally, so timers of local meshes (TTL teardown, token renewal) fire without anyone
 * typing a command. Stopping the supervisor (SIGTERM to the PID in worker.pid) stops the worker.
 */
export async function ensureWorker(
  client: Client,
  target: TemporalTarget,
  progress: Progress = stderrProgress,
): Promise<void> {
  const { dir, pidFile, log } = workerFiles(target);
  if (!onThisMachine(target) && (await hasPollers(client, target.namespace))) return;
  if (workersAreExternal(target)) return waitForPollers(client, target);
  if (runningPid(pidFile, dir) === undefined) {
    const why = `no meshflow worker polls task queue "${TASK_QUEUE}"`;
    await startWorker(target, progress, `${why}: starting one in the background (log: ${log})`);
  }
  // Our worker polls once a poller carries its PID (the SDK's identity is pid@host); a dead worker's
  // pollers would satisfy a mere count.
  const deadline = Date.now() + 120_000;
  while (!(await ourWorkerPolls(client, target))) {
    if (Date.now() > deadline || runningPid(pidFile, dir) === undefined) {
      throw new Error(`the meshflow worker did not start; see ${log}:\n${logTail(pidFile)}`);
    }
    await sleep(500);
  }
}

async function startWorker(target: TemporalTarget, progress: Progress, message: string): Promise<void> {
  const { dir, pidFile } = workerFiles(target);
  await ensureTools([...LOCAL_TOOL_NAMES, 'istioctl'], progress);
  progress(message);
  startSupervisedDaemon({
    file: process.execPath,
    // The worker ignores --marker; it lets the PID check recognise this process.
    args: [path.join(packageRoot, 'dist', 'cli', 'worker.js'), `--marker=${dir}`],
    pidFile,
    marker: dir,
    env: { ...process.env, TEMPORAL_ADDRESS: target.address, TEMPORAL_NAMESPACE: target.namespace },
  });
}

/**
 * For commands that run for a while (`up` following a mesh): when this machine's background worker
 * (its supervisor) is no longer running, starts it again, says so, and waits until it polls.
 * Returns whether it did. Does nothing for a Temporal elsewhere, whose workers are not ours.
 */
export async function keepWorkerRunning(
  client: Client,
  target: TemporalTarget,
  progress: Progress = stderrProgress,
): Promise<boolean> {
  const { dir, pidFile, log } = workerFiles(target);
  if (!onThisMachine(target) || workersAreExternal(target) || runningPid(pidFile, dir) !== undefined) return false;
  await startWorker(target, progress, `the background meshflow worker is not running: restarting it (log: ${log})`);
  await ensureWorker(client, target, progress);
  return true;
}

/** The PID of this machine's background worker for `target` (not its supervisor) while it runs. */
export function localWorkerPid(target?: TemporalTarget): number | undefined {
  const { dir, pidFile } = workerFiles(target);
  return supervisedPid(pidFile, dir) ?? runningPid(pidFile, dir);
}

/**
 * Keeps an eye on this machine's background worker while a command follows a mesh: `check()`
 * (every few seconds) restarts it when its supervisor is gone and says when its supervisor has
 * restarted it; `recovered()`, after a failed query, tells whether the worker had died and is
 * back, polling, so the query is worth asking again.
 */
export function watchWorker(client: Client, target: TemporalTarget, progress: Progress = stderrProgress) {
  let seen = localWorkerPid(target);
  const check = async (): Promise<void> => {
    if (await keepWorkerRunning(client, target, progress)) {
      seen = localWorkerPid(target);
      return;
    }
    const now = localWorkerPid(target);
    if (seen !== undefined && now !== undefined && now !== seen) {
      const log = workerFiles(target).log;
      progress(
        `the background meshflow worker (pid ${seen}) exited; its supervisor restarted it (pid ${now}, log: ${log})`,
      );
    }
    if (now !== undefined) seen = now;
  };
  const recovered = async (): Promise<boolean> => {
    if (!onThisMachine(target)) return false;
    const before = seen;
    await check();
    const { dir, pidFile } = workerFiles(target);
    if (runningPid(pidFile, dir) === undefined) return false;
    await ensureWorker(client, target, progress);
    seen = localWorkerPid(target);
    return seen !== before;
  };
  return { check, recovered };
}

async function ourWorkerPolls(client: Client, target: TemporalTarget): Promise<boolean> {
  const { dir, pidFile } = workerFiles(target);
  // The supervised worker, or a worker started without a supervisor by an earlier version.
  const pids = [supervisedPid(pidFile, dir), runningPid(pidFile, dir)].filter((p) => p !== undefined);
  return pollsFromPid(client, target.namespace, pids);
}

/** Waits (2 minutes at most) for any worker to poll: the deployment's own, which it restarts. */
async function waitForPollers(client: Client, target: TemporalTarget): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!(await hasPollers(client, target.namespace))) {
    if (Date.now() > deadline) {
      throw new Error(
        `no meshflow worker polls task queue "${TASK_QUEUE}" at ${target.address} (namespace ${target.namespace}), ` +
          'and its workers are started by its deployment, not by this command (`meshflow team status` shows them)',
      );
    }
    await sleep(500);
  }
}

async function hasPollers(client: Client, namespace: string): Promise<boolean> {
  const r = await pollersOf(client, namespace);
  return (r.pollers ?? []).length > 0;
}

/** Connects, and makes sure a worker is there to run what the command asks (queries, updates, steps). */
export async function connectWithWorker(
  progress: Progress = stderrProgress,
): Promise<{ client: Client; target: TemporalTarget }> {
  const { client, target } = await connect(progress);
  await ensureWorker(client, target, progress);
  return { client, target };
}
