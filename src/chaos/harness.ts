// The chaos harness: a real Temporal dev server and real meshflow workers as child processes (so
// they can be SIGKILLed and restarted on the same database and state), local clusters, and runs
// that break something at a random point and then check the promise: every run ends ready or
// fully compensated, with no duplicate and nothing left behind. Used by `npm run chaos` and, for
// one run, by the tests.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { meshHandle, meshStatus, startMesh, teardownMesh } from '../client';
import { LocalClusters, type LocalTools } from '../local/clusters';
import { packageRoot } from '../paths';
import type { MeshSpec } from '../spec/schema';
import { localClusterName } from '../spec/names';
import { DEV_SERVER_ARGS, ensureSearchAttributes, tryConnect } from '../temporal/connection';
import { dataConverter } from '../temporal/codec';
import { MESH_SEARCH_ATTRIBUTES } from '../temporal/search-attributes';
import { stopDaemon } from '../util/daemon';
import { freePort, sleep } from '../util/net';
import { TASK_QUEUE } from '../workflows/definitions';
import type { MeshStatus } from '../workflows/types';

export interface ChaosTools {
  temporal: string;
  local: LocalTools;
}

/** What one run ended as, and what it left. */
export interface RunResult {
  mesh: string;
  /** What was broken, and when (ms after start, and the step that was running). */
  fault: string;
  endedReady: boolean;
  /** The phase it ended in, with the mesh's error when it has one (why it did not end ready). */
  ended?: string;
  fullyCompensated: boolean;
  duplicates: string[];
  leftovers: string[];
  /** The run neither ended nor failed in time: the harness stopped waiting and tore it down. */
  gaveUp?: boolean;
  error?: string;
}

/** A dev server and one worker, each a child process that can be killed and started again. */
export class ChaosBench {
  readonly state: string;
  private server?: ChildProcess;
  private worker?: ChildProcess;
  private port = 0;
  private connection?: Connection;
  client?: Client;
  readonly local: LocalClusters;
  workerRestarts = 0;
  /** The task queue meshes are started on (the child worker's by default). */
  taskQueue = TASK_QUEUE;

  constructor(
    private readonly tools: ChaosTools,
    root = os.tmpdir(),
  ) {
    this.state = fs.mkdtempSync(path.join(root, 'meshflow-chaos-'));
    this.local = new LocalClusters(this.state, tools.local);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async startServer(): Promise<void> {
    this.port ||= await freePort();
    const args = [
      'server',
      'start-dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(this.port),
      '--headless',
      '--log-level',
      'error',
      '--db-filename',
      path.join(this.state, 'temporal.db'),
      ...DEV_SERVER_ARGS,
      ...Object.values(MESH_SEARCH_ATTRIBUTES).flatMap((k) => [
        '--search-attribute',
        `${k.name}=${k.type === 'INT' ? 'Int' : 'Keyword'}`,
      ]),
    ];
    this.server = spawn(this.tools.temporal, args, {
      stdio: ['ignore', 'ignore', fs.openSync(path.join(this.state, 'temporal.log'), 'a')],
    });
    const deadline = Date.now() + 60_000;
    let connection: Connection | undefined;
    while (!(connection = await tryConnect({ address: this.address }))) {
      if (Date.now() > deadline || this.server.exitCode !== null)
        throw new Error(`the dev server did not start (see ${this.state}/temporal.log)`);
      await sleep(200);
    }
    await ensureSearchAttributes(connection, 'default');
    await this.connection?.close().catch(() => undefined);
    this.connection = connection;
    this.client = new Client({ connection, namespace: 'default', dataConverter: dataConverter() });
  }

  startWorker(): void {
    this.worker = spawn(process.execPath, [path.join(packageRoot, 'dist', 'cli', 'worker.js')], {
      // A fixed host: the restarted worker takes its meshes' host queue back.
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: this.address,
        TEMPORAL_NAMESPACE: 'default',
        MESHFLOW_STATE_DIR: this.state,
        MESHFLOW_HOST_ID: 'chaos',
      },
      stdio: [
        'ignore',
        fs.openSync(path.join(this.state, 'worker.log'), 'a'),
        fs.openSync(path.join(this.state, 'worker.log'), 'a'),
      ],
    });
  }

  /** Restarts the worker if it died on its own (as the local mode's supervisor does). */
  keepWorkerAlive(): void {
    if (this.worker && this.worker.exitCode === null && this.worker.signalCode === null) return;
    this.workerRestarts++;
    this.startWorker();
  }

  async killWorker(): Promise<void> {
    await kill(this.worker);
    this.startWorker();
  }

  async killServer(downMs = 1000): Promise<void> {
    await kill(this.server);
    await sleep(downMs);
    await this.startServer();
  }

  async stop(): Promise<void> {
    await kill(this.worker);
    await this.connection?.close().catch(() => undefined);
    await kill(this.server);
    for (const c of this.local.list()) {
      const dir = path.dirname(c.kubeconfig);
      await stopDaemon(path.join(dir, 'simulated-data-plane.pid'), dir);
    }
    await this.local.delete(this.local.list().map((c) => c.name)).catch(() => undefined);
    fs.rmSync(this.state, { recursive: true, force: true });
  }

  /** The mesh's status, waiting through a server restart. */
  async status(mesh: string): Promise<MeshStatus | undefined> {
    try {
      return await meshStatus(this.client!, mesh);
    } catch {
      return undefined;
    }
  }

  /**
   * Starts `spec`, runs `fault` once `breakWhen` holds (ms since start, latest status; no fault
   * when undefined), follows the mesh to its end (ready, then torn down; or compensated) and
   * reports what it left.
   */
  async run(
    spec: MeshSpec,
    faultName: string,
    breakWhen?: (elapsedMs: number, status: MeshStatus | undefined) => boolean,
    fault?: () => Promise<void>,
    timeoutMs = 6 * 60_000,
  ): Promise<RunResult> {
    const started = Date.now();
    const result: RunResult = {
      mesh: spec.name,
      fault: '',
      endedReady: false,
      fullyCompensated: false,
      duplicates: [],
      leftovers: [],
    };
    try {
      await startMesh(this.client!, spec, this.taskQueue);
      let broken = fault === undefined;
      if (broken) result.fault = faultName;
      let s: MeshStatus | undefined;
      for (;;) {
        this.keepWorkerAlive();
        s = await this.status(spec.name);
        if (!broken && breakWhen!(Date.now() - started, s)) {
          const running =
            s?.steps
              .filter((x) => x.state === 'running')
              .map((x) => x.id)
              .join(',') ||
            s?.phase ||
            '?';
          result.fault = `${faultName} at ${((Date.now() - started) / 1000).toFixed(1)}s (${running})`;
          broken = true;
          await fault!();
        }
        if (s && !['provisioning', 'compensating'].includes(s.phase) && broken) break;
        if (Date.now() - started > timeoutMs) break;
        await sleep(250);
      }
      if (!s || ['provisioning', 'compensating'].includes(s.phase)) {
        // Given up on: the run is torn down all the same, so that nothing it made outlives the row.
        result.gaveUp = true;
        result.error = `still ${s?.phase ?? 'unknown'} after ${timeoutMs / 1000}s${stillRunning(s)}`;
        result.ended = s?.phase;
        await teardownMesh(this.client!, spec.name).catch((err: unknown) => {
          result.error += `; down failed: ${(err as Error).message}`;
        });
      } else {
        result.endedReady = s.phase === 'ready';
        result.ended = s.error ? `${s.phase}: ${s.error}` : s.phase;
      }
      if (result.endedReady && s) {
        const want = spec.clusters.map((x) => localClusterName(spec.name, x.name)).sort();
        const have = this.local
          .list()
          .map((c) => c.name)
          .filter((n) => n.startsWith(`${spec.name}-`))
          .sort();
        if (JSON.stringify(have) !== JSON.stringify(want))
          result.duplicates.push(`clusters ${have.join(',')} (want ${want.join(',')})`);
        if (s.checks.some((c) => c.name === 'same-root' && c.status !== 'passed')) result.duplicates.push('two roots');
        if (s.ledger.filter((l) => l.resource.type === 'file').length > 1) result.duplicates.push('two CA directories');
        await teardownMesh(this.client!, spec.name);
      }
      const final = await this.finalStatus(spec.name, timeoutMs);
      result.fullyCompensated = final.phase === 'deleted' && final.ledger.length === 0 && final.leftBehind.length === 0;
      if (!result.fullyCompensated)
        result.error = [result.error, `${final.phase}: ${final.error ?? ''} ${JSON.stringify(final.leftBehind)}`]
          .filter(Boolean)
          .join('; then ');
    } catch (err) {
      result.error = [result.error, (err as Error).message].filter(Boolean).join('; then ');
    }
    result.leftovers = this.leftovers(spec);
    return result;
  }

  /** Waits for the mesh's workflow to close (torn down or failed), keeping the worker alive; its last status. */
  async finalStatus(mesh: string, timeoutMs: number): Promise<MeshStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.keepWorkerAlive();
      try {
        const desc = await meshHandle(this.client!, mesh).describe();
        if (desc.status.name !== 'RUNNING') {
          const s = await this.status(mesh);
          if (s) return s;
        }
      } catch {
        // the server may be restarting
      }
      if (Date.now() > deadline) throw new Error(`mesh ${mesh} did not finish tearing down in ${timeoutMs / 1000}s`);
      await sleep(500);
    }
  }

  /** Local clusters, processes and state files of the mesh that still exist. */
  leftovers(spec: MeshSpec): string[] {
    const left: string[] = [];
    for (const c of this.local.list()) if (c.name.startsWith(`${spec.name}-`)) left.push(`cluster ${c.name}`);
    const marker = path.join(this.state, 'local', 'clusters', `${spec.name}-`);
    for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (cmd.includes(marker)) left.push(`process ${pid} ${cmd.split('\0').slice(0, 2).join(' ')}`);
      } catch {
        // gone meanwhile
      }
    }
    if (fs.existsSync(path.join(this.state, 'meshes', spec.name)))
      left.push(`files ${path.join(this.state, 'meshes', spec.name)}`);
    return left;
  }
}

/** The steps still running, with their attempts and last error: where a run given up on stood. */
function stillRunning(s: MeshStatus | undefined): string {
  const running = (s?.steps ?? []).filter((x) => x.state === 'running');
  if (!running.length) return '';
  const one = (x: MeshStatus['steps'][number]) =>
    [
      x.id,
      x.attempts && x.attempts > 1 ? ` attempt ${x.attempts}` : '',
      x.lastError ? `, last error: ${x.lastError}` : '',
    ].join('');
  return ` (running: ${running.map(one).join('; ')})`;
}

async function kill(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((resolve) => p.once('exit', resolve));
  p.kill('SIGKILL');
  await exited;
}

/** A small seeded generator (mulberry32), so a chaos run can be repeated. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
