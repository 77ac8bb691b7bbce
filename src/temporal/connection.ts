// Where meshflow finds Temporal: TEMPORAL_ADDRESS (default 127.0.0.1:7233) and
// TEMPORAL_NAMESPACE (default "default"), with TLS or an API key as connection-options.ts reads
// them. With nothing listening on the local address (the default, or
// MESHFLOW_LOCAL_TEMPORAL_ADDRESS) and no TLS or key, the local mode starts the pinned dev server
// (SQLite under the state directory, Web UI on the port + 1000: 8233).
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { MESH_SEARCH_ATTRIBUTES, searchAttributeRegistrations } from './search-attributes';
import { dataConverter, payloadKeysFromEnv } from './codec';
import {
  connectionOptions,
  describeConnection,
  isSecured,
  type TemporalConnectionOptions,
  tlsProblem,
} from './connection-options';
import { logFileOf, logTail, programActivity, runningPid, startSupervisedDaemon, stopDaemon } from '../util/daemon';
import { formatDuration, type Progress, silent } from '../util/progress';
import { canConnect, sleep } from '../util/net';
import { TASK_QUEUE } from './queues';

export const DEFAULT_ADDRESS = '127.0.0.1:7233';
export const DEFAULT_UI_PORT = 8233;

export interface TemporalTarget {
  address: string;
  namespace: string;
  uiUrl?: string;
}

/**
 * Where the local mode runs its dev server: DEFAULT_ADDRESS, or MESHFLOW_LOCAL_TEMPORAL_ADDRESS (a
 * loopback host:port, e.g. when 7233 is taken, or for tests). Its Web UI listens on port + 1000.
 */
export function localAddress(): string {
  const address = process.env.MESHFLOW_LOCAL_TEMPORAL_ADDRESS || DEFAULT_ADDRESS;
  if (!/^(127\.0\.0\.1|localhost):\d+$/.test(address)) {
    throw new Error(`MESHFLOW_LOCAL_TEMPORAL_ADDRESS=${address}: the local dev server listens on 127.0.0.1:PORT`);
  }
  return address;
}

export function uiPortOf(address: string): number {
  return Number(address.split(':')[1]) + 1000;
}

export function temporalTarget(): TemporalTarget {
  const local = localAddress();
  const address = process.env.TEMPORAL_ADDRESS || local;
  return {
    address,
    namespace: process.env.TEMPORAL_NAMESPACE || 'default',
    uiUrl: process.env.MESHFLOW_UI_URL || (address === local ? `http://127.0.0.1:${uiPortOf(address)}` : undefined),
  };
}

/**
 * A client connection with `options` (connectionOptions()), or an error that says where, how (TLS,
 * API key; never the key) and why not, e.g. a server certificate the CA does not vouch for.
 */
export async function connectTo(options: TemporalConnectionOptions, timeoutMs = 10_000): Promise<Connection> {
  try {
    return await Connection.connect({ ...options, connectTimeout: timeoutMs });
  } catch (err) {
    throw await connectionError(options, err);
  }
}

/** The error for a failed connect: where, how, the SDK's reason and, with TLS, the handshake's. */
export async function connectionError(options: TemporalConnectionOptions, err: unknown): Promise<Error> {
  const why = [err instanceof Error ? err.message : String(err), await tlsProblem(options)].filter(Boolean);
  return new Error(`no Temporal server answers at ${describeConnection(options)}: ${why.join('; ')}`, { cause: err });
}

export async function tryConnect(options: TemporalConnectionOptions): Promise<Connection | undefined> {
  return connectTo(options, 2000).catch(() => undefined);
}

/**
 * Dev-server settings meshflow starts it with (the tests and the bench too). Each step of a mesh
 * pays one round trip through Temporal; measured with chains of no-op activities on a SQLite file
 * (`npm run bench`, 2b), p50 per activity, on the workflow's task queue / on another one:
 * - history.transferProcessorMaxPollRPS: the dev server's single history shard reads its transfer
 *   queue (the tasks that hand workflow and activity tasks to matching) at most 20 times a second,
 *   with a burst of 20; once a run of quick steps has spent it, every hand-off waits for the next
 *   read: 50 / 100 ms (two hand-offs on another queue). At 1000/s that wait is gone.
 * - SQLite in WAL mode with synchronous=normal commits without an fsync each: together with the
 *   above, ~13 / ~15 ms, as fast as in memory here. It survives a crash or kill of the server
 *   without losing anything (a power cut may lose the last commits, never the database); the -wal
 *   and -shm files beside the database are part of it. Without --db-filename (tests) they are moot.
 * - eager activity execution hands an activity scheduled on the workflow's own task queue to the
 *   worker in the reply to its workflow task, skipping one hand-off: a few ms once the transfer
 *   queue is fast. Mesh steps run on their host's task queue, where it does not apply.
 * Tried without an effect beyond noise: history.timerProcessorMaxPollRPS,
 * history.visibilityProcessorMaxPollRPS, one task queue partition, matching.useNewMatcher.
 */
export const DEV_SERVER_ARGS = [
  '--dynamic-config-value',
  'system.enableActivityEagerExecution=true',
  '--dynamic-config-value',
  'history.transferProcessorMaxPollRPS=1000',
  '--sqlite-pragma',
  'journal_mode=wal',
  '--sqlite-pragma',
  'synchronous=normal',
];

/** Where `meshflow serve` answers the Web UI's codec calls unless MESHFLOW_CODEC_URL says otherwise. */
export const DEFAULT_CODEC_URL = 'http://127.0.0.1:8080/codec';

/**
 * With payload encryption on, the dev server's Web UI decodes payloads through `meshflow serve`'s
 * codec endpoint (MESHFLOW_CODEC_URL, default DEFAULT_CODEC_URL); off, it shows them as they are.
 */
export function uiCodecArgs(env: Record<string, string | undefined> = process.env): string[] {
  return payloadKeysFromEnv(env).length ? ['--ui-codec-endpoint', env.MESHFLOW_CODEC_URL || DEFAULT_CODEC_URL] : [];
}

/** How long to wait for a starting dev server (see waitForDevServer). */
export interface StartWait {
  /** Give up when the process has shown no sign of progress for this long (default 2 min). */
  stallMs?: number;
  /** Give up after this long however it goes (default 10 min). */
  ceilingMs?: number;
  /** A progress line this often while waiting (default 5 s). */
  reportEveryMs?: number;
}

/**
 * Connects to Temporal; when nothing answers on the local address, starts the local dev server as
 * a background process and says so. Returns the client and whether we started it.
 */
export async function connectOrStartLocal(opts: {
  stateDir: string;
  temporalBin: () => Promise<string>;
  progress?: Progress;
  wait?: StartWait;
}): Promise<{ client: Client; connection: Connection; started: boolean; target: TemporalTarget }> {
  const progress = opts.progress ?? silent;
  const target = temporalTarget();
  const options = connectionOptions(target.address);
  // Bad payload keys are refused before anything starts (they are read again by every client and worker).
  const codecArgs = uiCodecArgs();
  // A server reached with TLS or an API key is the user's, never a dev server of ours.
  const local = target.address === localAddress() && !isSecured(options);
  if (!local) return connected(await connectTo(options), target, false);
  // Locally, a closed port says at once what a gRPC connect would say after its 2 s timeout.
  const [host, port] = target.address.split(':');
  let connection = (await canConnect(Number(port), host)) ? await tryConnect(options) : undefined;
  let started = false;
  if (!connection) {
    const dir = path.join(opts.stateDir, 'temporal');
    const pidFile = path.join(dir, 'temporal.pid');
    if (runningPid(pidFile, dir) === undefined) {
      progress(
        `no Temporal server at ${target.address}: starting the local dev server ` +
          `(data in ${dir}, Web UI ${target.uiUrl})`,
      );
      // Supervised like the worker: a dev server that dies (a crash, the OOM killer, a SIGKILL) is
      // started again on the same database, so the timers of local meshes fire without a command.
      startSupervisedDaemon({
        file: await opts.temporalBin(),
        pidFile,
        marker: dir,
        args: [
          'server',
          'start-dev',
          '--ip',
          host,
          '--port',
          port,
          '--ui-port',
          String(uiPortOf(target.address)),
          '--db-filename',
          path.join(dir, 'temporal.db'),
          '--namespace',
          target.namespace,
          '--log-level',
          'warn',
          ...DEV_SERVER_ARGS,
          ...codecArgs,
          ...Object.values(MESH_SEARCH_ATTRIBUTES).flatMap((k) => [
            '--search-attribute',
            `${k.name}=${k.type === 'INT' ? 'Int' : 'Keyword'}`,
          ]),
        ],
      });
      started = true;
    }
    connection = await waitForDevServer(target.address, pidFile, dir, progress, opts.wait);
  }
  return connected(connection, target, started);
}

async function connected(connection: Connection, target: TemporalTarget, started: boolean) {
  await ensureSearchAttributes(connection, target.namespace);
  const client = new Client({ connection, namespace: target.namespace, dataConverter: dataConverter() });
  return { client, connection, started, target };
}

/**
 * Waits for the dev server (PID file `pidFile`) to answer on `address`, for as long as its process
 * runs and makes progress: it uses CPU time, its log grows, or its port starts accepting. A loaded
 * machine may take minutes to start it; a fixed deadline gave up on servers that came up later.
 * Gives up when the process has exited, has shown no progress for `stallMs`, or after `ceilingMs`;
 * the error names the log and quotes its last lines.
 */
export async function waitForDevServer(
  address: string,
  pidFile: string,
  marker: string,
  progress: Progress,
  wait: StartWait = {},
): Promise<Connection> {
  const stallMs = wait.stallMs ?? 120_000;
  const ceilingMs = wait.ceilingMs ?? 600_000;
  const reportEveryMs = wait.reportEveryMs ?? 5_000;
  const port = Number(address.split(':')[1]);
  const host = address.split(':')[0];
  const started = Date.now();
  let lastReport = started;
  let lastProgress = started;
  let lastSign = '';
  let seen: number | undefined;
  const fail = (why: string) =>
    new Error(`the local Temporal dev server ${why}; log ${logFileOf(pidFile)}, last lines:\n${logTail(pidFile)}`);
  for (;;) {
    const listening = await canConnect(port, host);
    if (listening) {
      const connection = await tryConnect({ address });
      if (connection) return connection;
    }
    const now = Date.now();
    // A process seen gone is looked at once more: while it execs (a wrapper script handing over
    // to the binary) its command line reads empty for a moment.
    const look = () => programActivity(pidFile, marker);
    let activity = look();
    if (activity === undefined || activity === 'pending') activity = await sleep(200).then(look);
    // Supervised, a server that exits before it ever answered is not started again and again: the
    // supervisor is stopped and the exit reported, as for an unsupervised one.
    const restarted = activity !== undefined && activity !== 'pending' && seen !== undefined && activity.pid !== seen;
    if (activity === undefined || restarted || (activity === 'pending' && seen !== undefined)) {
      await stopDaemon(pidFile, marker, 2000);
      throw fail(`exited before it answered on ${address} (after ${formatDuration(now - started)})`);
    }
    if (activity === 'pending') {
      await sleep(250);
      continue;
    }
    seen = activity.pid;
    const sign = `${activity.pid}/${activity.cpuTicks}/${activity.logBytes}/${listening}`;
    if (sign !== lastSign) {
      lastSign = sign;
      lastProgress = now;
    }
    if (now - lastProgress > stallMs) {
      const stalled = formatDuration(now - lastProgress);
      throw fail(`(pid ${activity.pid}) made no progress for ${stalled} (no CPU time used, log unchanged)`);
    }
    if (now - started > ceilingMs) {
      throw fail(`(pid ${activity.pid}) did not answer on ${address} within ${formatDuration(ceilingMs)}`);
    }
    if (now - lastReport >= reportEveryMs) {
      lastReport = now;
      progress(
        `waiting for the local Temporal dev server to answer on ${address} (${formatDuration(now - started)}; ` +
          `pid ${activity.pid} ${listening ? 'listening, not serving yet' : 'starting'}; log ${logFileOf(pidFile)})`,
      );
    }
    await sleep(250);
  }
}

/** Registers meshflow's search attributes where they are missing (start-dev's flags do not apply to an existing db). */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<void> {
  // A server that has just started on a loaded machine may take a while to register its namespace.
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      const existing = await connection.operatorService.listSearchAttributes({ namespace });
      const known = existing.customAttributes ?? {};
      const missing = Object.values(MESH_SEARCH_ATTRIBUTES).filter((k) => !(k.name in known));
      if (missing.length === 0) return;
      await connection.operatorService.addSearchAttributes({
        namespace,
        searchAttributes: searchAttributeRegistrations(missing.map((k) => k.name)),
      });
      return;
    } catch (err) {
      // The namespace may not be registered yet right after the server starts.
      if (Date.now() > deadline) throw err;
      await sleep(250);
    }
  }
}

/** The pollers of meshflow's shared task queue for workflow tasks (kind 1: not sticky; type 1: workflow). */
export function pollersOf(client: Client, namespace: string) {
  const taskQueue = { name: TASK_QUEUE, kind: 1 };
  return client.workflowService.describeTaskQueue({ namespace, taskQueue, taskQueueType: 1 });
}

/** Whether one of the processes `pids` polls that queue (the SDK's identity is pid@host). */
export async function pollsFromPid(client: Client, namespace: string, pids: number[]): Promise<boolean> {
  const r = await pollersOf(client, namespace);
  return (r.pollers ?? []).some((p) => pids.some((pid) => (p.identity ?? '').startsWith(`${pid}@`)));
}
