// Local mode against a scratch state directory and port: the CLI's dev server and background
// worker, started as `meshflow up` starts them. The worker runs under a supervisor, so it comes
// back after a SIGKILL with no command typed; a dev server that starts slowly is waited for while
// it makes progress, and one that dies or hangs is reported with its log.
import fs from 'node:fs';
import path from 'node:path';
import type { ConnectionLike } from '@temporalio/client';
import { execa } from 'execa';
import { type LocalStatus } from '../src/cli/local-admin';
import { connect, ensureWorker, keepWorkerRunning, workerFiles } from '../src/cli/local-mode';
import { LocalClusters } from '../src/local/clusters';
import { connectOrStartLocal, temporalTarget } from '../src/temporal/connection';
import { childPidFile, logFileOf, runningPid, stopDaemon, supervisedPid } from '../src/util/daemon';
import { canConnect, freePort, sleep } from '../src/util/net';
import { sweepDaemons } from '../src/util/sweep';
import { TASK_QUEUE } from '../src/workflows/definitions';
import { scratchDir, tool } from './helpers/env';
import { devServer } from './helpers/temporal';

const saved = { ...process.env };
const lines: string[] = [];
const progress = (line: string) => void lines.push(line);
const scratch: string[] = [];

/** A loopback port for a dev server whose Web UI port (+1000) is free too. */
async function devServerPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 1000 <= 65535 && !(await canConnect(port + 1000))) return port;
  }
}

async function useLocalMode(label: string): Promise<string> {
  const state = scratchDir(label);
  scratch.push(state);
  process.env.MESHFLOW_STATE_DIR = state;
  process.env.MESHFLOW_LOCAL_TEMPORAL_ADDRESS = `127.0.0.1:${await devServerPort()}`;
  delete process.env.TEMPORAL_ADDRESS;
  delete process.env.MESHFLOW_UI_URL;
  return state;
}

type Probe<T> = () => Promise<T | undefined> | T | undefined;

async function eventually<T>(what: string, probe: Probe<T>, timeoutMs = 45_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** A stand-in for the temporal binary, a shell script under `dir` that gets the real one's arguments. */
function fakeTemporal(dir: string, body: string): string {
  const file = path.join(dir, 'fake-temporal.sh');
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
}

afterEach(() => {
  process.env = { ...saved };
});

afterAll(async () => {
  // Each test stops what it started; this catches what a failed assertion left behind.
  for (const dir of scratch) await sweepDaemons(dir);
});

test('the worker is restarted after SIGKILL without any command, and stops with its supervisor', async () => {
  const state = await useLocalMode('local-mode-worker');
  const temporalDir = path.join(state, 'temporal');
  const { dir, pidFile, log } = workerFiles();
  let connection: ConnectionLike | undefined;
  try {
    const { client, target, startedServer } = await connect(progress);
    connection = client.connection;
    expect(startedServer).toBe(true);
    expect(target.address).toBe(process.env.MESHFLOW_LOCAL_TEMPORAL_ADDRESS);
    expect(target.uiUrl).toBe(`http://127.0.0.1:${Number(target.address.split(':')[1]) + 1000}`);
    // DEV_SERVER_ARGS put the database in WAL mode: its -wal file lies beside it.
    expect(fs.existsSync(path.join(temporalDir, 'temporal.db-wal'))).toBe(true);
    await ensureWorker(client, target, progress);

    const pollsWith = async (pid: number) => {
      const r = await client.workflowService.describeTaskQueue({
        namespace: target.namespace,
        taskQueue: { name: TASK_QUEUE, kind: 1 },
        taskQueueType: 1,
      });
      return (r.pollers ?? []).some((p) => (p.identity ?? '').startsWith(`${pid}@`)) ? true : undefined;
    };
    const supervisor = runningPid(pidFile, dir)!;
    const first = supervisedPid(pidFile, dir)!;
    expect(supervisor).toBeDefined();
    expect(first).toBeDefined();
    expect(first).not.toBe(supervisor);
    await eventually('the first worker polls', () => pollsWith(first));

    // Killed outright: its supervisor starts another, which polls again; nobody typed a command.
    process.kill(first, 'SIGKILL');
    const second = await eventually('a new worker', () => {
      const pid = supervisedPid(pidFile, dir);
      return pid !== undefined && pid !== first ? pid : undefined;
    });
    await eventually('the restarted worker polls', () => pollsWith(second));
    expect(runningPid(pidFile, dir)).toBe(supervisor);
    expect(fs.readFileSync(log, 'utf8')).toMatch(/killed by SIGKILL after [\d.]+ s: restarting/);

    // The supervisor itself killed outright: its worker does not stay behind on its own, and the
    // check `up` makes while it follows a mesh starts the pair again and says so.
    process.kill(supervisor, 'SIGKILL');
    const orphanGone = () => (runningPid(childPidFile(pidFile), dir) === undefined ? true : undefined);
    await eventually('the orphaned worker exits', orphanGone, 15_000);
    lines.length = 0;
    expect(await keepWorkerRunning(client, target, progress)).toBe(true);
    expect(lines.join('\n')).toMatch(/background meshflow worker is not running: restarting it/);
    const third = supervisedPid(pidFile, dir)!;
    await eventually('the worker started by the check polls', () => pollsWith(third));
    expect(await keepWorkerRunning(client, target, progress)).toBe(false);

    // Stopping the supervisor stops its worker, gracefully.
    expect(await stopDaemon(pidFile, dir)).toBe(true);
    expect(runningPid(childPidFile(pidFile), dir)).toBeUndefined();
    expect(fs.readFileSync(log, 'utf8')).toMatch(/SIGTERM: stopping pid \d+[\s\S]*stopped \(exited with code 0\)/);
  } finally {
    await connection?.close();
    await stopDaemon(pidFile, dir);
    await stopDaemon(path.join(temporalDir, 'temporal.pid'), temporalDir);
  }
  expect(runningPid(path.join(temporalDir, 'temporal.pid'), temporalDir)).toBeUndefined();
});

test("a second Temporal on this machine gets a worker of its own, not the wait for the first one's", async () => {
  const state = await useLocalMode('local-mode-two-targets');
  const temporalDir = path.join(state, 'temporal');
  const own = workerFiles();
  const users = await devServer(); // a dev server of the user's, on another loopback port
  let connection: ConnectionLike | undefined;
  let other: ReturnType<typeof workerFiles> | undefined;
  try {
    const local = await connect(progress);
    connection = local.client.connection;
    await ensureWorker(local.client, local.target, progress);
    process.env.TEMPORAL_ADDRESS = users.address;
    const target = temporalTarget();
    expect(target.address).toBe(users.address);
    other = workerFiles(target);
    expect(other.dir).not.toBe(own.dir);
    lines.length = 0;
    const t0 = Date.now();
    await ensureWorker(users.client, target, progress);
    expect(Date.now() - t0).toBeLessThan(60_000);
    expect(lines.join('\n')).toContain(`starting one in the background (log: ${other.log})`);
    // Each server has its own worker polling it; the first one is still the same process.
    const pollers = async (client: typeof users.client, pid: number) =>
      (
        await client.workflowService.describeTaskQueue({
          namespace: 'default',
          taskQueue: { name: TASK_QUEUE, kind: 1 },
          taskQueueType: 1,
        })
      ).pollers?.some((p) => (p.identity ?? '').startsWith(`${pid}@`));
    expect(await pollers(users.client, supervisedPid(other.pidFile, other.dir)!)).toBe(true);
    expect(await pollers(local.client, supervisedPid(own.pidFile, own.dir)!)).toBe(true);
  } finally {
    await connection?.close();
    if (other) await stopDaemon(other.pidFile, other.dir);
    await stopDaemon(own.pidFile, own.dir);
    await stopDaemon(path.join(temporalDir, 'temporal.pid'), temporalDir);
    await users.teardown();
  }
});

test('the dev server accepts DEV_SERVER_ARGS without a database file too (as the tests start it)', async () => {
  const env = await devServer();
  try {
    const info = await env.connection.workflowService.getSystemInfo({});
    expect(info.serverVersion).toMatch(/^1\./);
  } finally {
    await env.teardown();
  }
});

test('a dev server that starts slowly is waited for while it makes progress, with progress lines', async () => {
  const state = await useLocalMode('local-mode-slow');
  const dir = path.join(state, 'temporal');
  const pidFile = path.join(dir, 'temporal.pid');
  // Alive and logging for 5 s before the real server even starts: longer than `stallMs` below, so
  // a fixed deadline of that length would have given up.
  const slow = fakeTemporal(
    state,
    `for i in 1 2 3 4 5; do echo "still loading $i"; sleep 1; done\nexec "${tool('temporal')}" "$@"`,
  );
  lines.length = 0;
  const t0 = Date.now();
  try {
    const { connection, started } = await connectOrStartLocal({
      stateDir: state,
      temporalBin: async () => slow,
      progress,
      wait: { stallMs: 2500, reportEveryMs: 1000 },
    });
    await connection.close();
    expect(started).toBe(true);
    expect(Date.now() - t0).toBeGreaterThan(5000);
    const waits = lines.filter((l) => l.startsWith('waiting for the local Temporal dev server'));
    expect(waits.length).toBeGreaterThanOrEqual(3);
    expect(waits[0]).toContain(logFileOf(pidFile));
    expect(temporalTarget().address).toBe(process.env.MESHFLOW_LOCAL_TEMPORAL_ADDRESS);
  } finally {
    await stopDaemon(pidFile, dir);
  }
});

test('a dev server that exits, or hangs without progress, is reported with its log', async () => {
  const state = await useLocalMode('local-mode-fail');
  const dir = path.join(state, 'temporal');
  const pidFile = path.join(dir, 'temporal.pid');
  try {
    const dies = fakeTemporal(state, 'echo "failed to bind: address already in use"; exit 2');
    await expect(connectOrStartLocal({ stateDir: state, temporalBin: async () => dies, progress })).rejects.toThrow(
      new RegExp(`exited before it answered[^]*${logFileOf(pidFile)}[^]*failed to bind: address already in use`),
    );
    // A process that neither uses CPU nor logs (node idling, with the real arguments on its command line).
    const idle = `"${process.execPath}" -e 'setTimeout(() => {}, 60000)' -- "$@"`;
    const hangs = fakeTemporal(state, `echo "hanging"\nexec ${idle}`);
    await expect(
      connectOrStartLocal({ stateDir: state, temporalBin: async () => hangs, progress, wait: { stallMs: 1500 } }),
    ).rejects.toThrow(/made no progress for \d+s[\s\S]*hanging/);
  } finally {
    await stopDaemon(pidFile, dir);
  }
});

test("local status shows what local mode runs; local stop refuses while meshes' clusters run, and --force leaves no process", async () => {
  const state = await useLocalMode('local-mode-stop');
  const cli = path.resolve(__dirname, '..', 'dist', 'cli', 'main.js');
  const meshflow = (...args: string[]) =>
    execa(process.execPath, [cli, 'local', ...args], { reject: false, env: { ...process.env } });
  let connection: ConnectionLike | undefined;
  try {
    const { client, target } = await connect(progress);
    connection = client.connection;
    await ensureWorker(client, target, progress);
    // A local cluster of a mesh, as the worker's create step leaves it (API server and etcd are enough here).
    const clusters = new LocalClusters(state, { kubeApiserver: tool('kube-apiserver'), etcd: tool('etcd') });
    const [cluster] = await clusters.start(['demo-east']);
    fs.writeFileSync(path.join(path.dirname(cluster.kubeconfig), 'owner.json'), '{"mesh":"demo","cluster":"east"}\n');

    const status = JSON.parse((await meshflow('status', '--json')).stdout) as LocalStatus;
    expect(status.devServer).toMatchObject({ running: true, address: target.address, ui: target.uiUrl });
    expect(status.workers).toEqual([
      expect.objectContaining({ what: 'worker', running: true, child: expect.any(Number) }),
    ]);
    expect(status.etcd.running).toBe(true);
    expect(status.clusters).toEqual([
      expect.objectContaining({
        name: 'demo-east',
        mesh: 'demo',
        cluster: 'east',
        running: true,
        server: cluster.server,
      }),
    ]);
    const text = (await meshflow('status')).stdout;
    expect(text).toMatch(/dev server\s+running\s+pid \d+/);
    expect(text).toContain('cluster demo-east (mesh demo, cluster east): running');

    // The mesh's cluster runs: refused, naming it, and nothing stopped.
    const refused = await meshflow('stop');
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain('local clusters of open meshes are running: demo (east)');
    expect(refused.stderr).toContain('--force');
    expect(runningPid(workerFiles().pidFile, workerFiles().dir)).toBeDefined();

    const stopped = await meshflow('stop', '--force');
    expect(stopped.exitCode).toBe(0);
    expect(stopped.stdout).toMatch(/^stopped: worker, cluster demo-east, etcd, dev server/);
    // No process of this state directory is left, and the cluster's data stays.
    const mine = fs
      .readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(state);
        } catch {
          return false;
        }
      });
    expect(mine).toEqual([]);
    expect(fs.existsSync(cluster.kubeconfig)).toBe(true);
    expect((await meshflow('status')).stdout).toContain('nothing runs');
    expect((await meshflow('stop')).stdout).toBe('stopped: nothing was running');
  } finally {
    await connection?.close();
  }
});

test('a SIGKILLed dev server is started again by its supervisor, its data intact, with no command typed', async () => {
  const state = await useLocalMode('local-mode-server-kill');
  const dir = path.join(state, 'temporal');
  const pidFile = path.join(dir, 'temporal.pid');
  const first = await connect(progress);
  try {
    // A workflow that no worker runs stays open: it must still be there after the crash.
    await first.client.workflow.start('waitsForever', { taskQueue: 'nobody', workflowId: 'survives-a-crash' });
    const supervisor = runningPid(pidFile, dir)!;
    const server = supervisedPid(pidFile, dir)!;
    expect(server).not.toBe(supervisor);
    process.kill(server, 'SIGKILL');
    const again = await eventually('a new dev server', () => {
      const pid = supervisedPid(pidFile, dir);
      return pid !== undefined && pid !== server ? pid : undefined;
    });
    expect(runningPid(pidFile, dir)).toBe(supervisor);
    await eventually('the dev server answers again', async () =>
      (await canConnect(Number(temporalTarget().address.split(':')[1]))) ? true : undefined,
    );
    const second = await connect(progress);
    try {
      expect(second.startedServer).toBe(false);
      const d = await second.client.workflow.getHandle('survives-a-crash').describe();
      expect(d.status.name).toBe('RUNNING');
    } finally {
      await second.client.connection.close();
    }
    expect(fs.readFileSync(logFileOf(pidFile), 'utf8')).toMatch(
      new RegExp(`pid ${server}[\\s\\S]*killed by SIGKILL after [\\d.]+ s: restarting[\\s\\S]*started: pid ${again}`),
    );
  } finally {
    await first.client.connection.close();
    await stopDaemon(pidFile, dir);
  }
  expect(supervisedPid(pidFile, dir)).toBeUndefined();
});
