// Long-lived child processes (etcd, API servers, the local Temporal server) that outlive the
// command that started them: detached into their own session, output to a log file, PID in a
// file. A PID is trusted only while /proc says the process still runs the same program with the
// same state directory on its command line, so a recycled PID is never signalled.
//
// A daemon that must keep running (the local worker) can run under a supervisor: this file run by
// node (`node daemon.js supervise ...`), which restarts the program when it exits abnormally, with
// backoff, gives up after a few quick failures, and stops it when it is stopped itself.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../paths';
import { sleep } from './net';

export interface DaemonSpec {
  file: string;
  args: string[];
  /** Where the PID goes; the log goes beside it (`.log`). */
  pidFile: string;
  /** A string the process's command line must contain (usually its state directory). */
  marker: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

function readPid(pidFile: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function cmdline(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return undefined;
  }
}

/** The PID of the daemon when it is running, otherwise undefined. */
export function runningPid(pidFile: string, marker: string): number | undefined {
  const pid = readPid(pidFile);
  if (pid === undefined) return undefined;
  const cmd = cmdline(pid);
  return cmd !== undefined && cmd.includes(marker) ? pid : undefined;
}

export function logFileOf(pidFile: string): string {
  return pidFile.replace(/\.pid$/, '') + '.log';
}

export function startDaemon(spec: DaemonSpec): number {
  fs.mkdirSync(path.dirname(spec.pidFile), { recursive: true });
  const log = fs.openSync(logFileOf(spec.pidFile), 'a');
  try {
    const child = spawn(spec.file, spec.args, {
      detached: true,
      stdio: ['ignore', log, log],
      env: spec.env ?? process.env,
      cwd: spec.cwd,
    });
    if (child.pid === undefined) throw new Error(`could not start ${spec.file}`);
    child.unref();
    fs.writeFileSync(spec.pidFile, `${child.pid}\n`);
    return child.pid;
  } finally {
    fs.closeSync(log);
  }
}

/**
 * Stops the daemon (SIGTERM, then SIGKILL after `graceMs`) and removes its PID file. The SIGKILL
 * goes to the daemon's process group (its own, as it was started detached), so a supervisor's
 * child goes with it.
 */
export async function stopDaemon(pidFile: string, marker: string, graceMs = 10_000): Promise<boolean> {
  return (await stopDaemons([{ pidFile, marker }], graceMs))[0];
}

export interface DaemonRef {
  pidFile: string;
  marker: string;
}

/**
 * Stops daemons together: SIGTERM to all, one wait of up to `graceMs` for all of them, then
 * SIGKILL to the process group of each one still running. `graceMs` 0 sends SIGKILL at once: for
 * processes whose state is deleted next, there is nothing a graceful exit would keep. A supervised
 * daemon is stopped through its supervisor (which, on SIGTERM, stops its program and restarts
 * nothing; on SIGKILL, its group, the program included, dies with it), and both are waited for.
 * Removes the PID files; says of each daemon whether it was running.
 */
export async function stopDaemons(daemons: DaemonRef[], graceMs = 10_000): Promise<boolean[]> {
  const found = daemons.map((d) => ({
    ...d,
    pid: runningPid(d.pidFile, d.marker),
    child: runningPid(childPidFile(d.pidFile), d.marker),
  }));
  const live = found.filter((d) => d.pid !== undefined);
  const runs = (d: (typeof live)[number]) => runsWith(d.pid, d.marker) || runsWith(d.child, d.marker);
  if (graceMs > 0) {
    for (const d of live) signal(d.pid!, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (live.some(runs) && Date.now() < deadline) await sleep(20);
  }
  const stubborn = live.filter(runs);
  for (const d of stubborn) {
    signal(processGroup(d.pid!) === d.pid ? -d.pid! : d.pid!, 'SIGKILL');
    // A program no longer in its supervisor's group (it never is, unless it left it) goes on its own.
    if (runsWith(d.child, d.marker)) signal(d.child!, 'SIGKILL');
  }
  while (stubborn.some(runs)) await sleep(20);
  for (const d of found) {
    fs.rmSync(d.pidFile, { force: true });
    // A supervisor removes its program's PID file itself, unless it was killed.
    if (d.pid !== undefined) fs.rmSync(childPidFile(d.pidFile), { force: true });
  }
  return found.map((d) => d.pid !== undefined);
}

/** Whether `pid` still runs a program whose command line holds `marker` (a zombie's is empty). */
function runsWith(pid: number | undefined, marker: string): boolean {
  const cmd = pid === undefined ? undefined : cmdline(pid);
  return cmd !== undefined && cmd.includes(marker);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Fields of /proc/<pid>/stat after the command name (which may contain spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

function processGroup(pid: number): number | undefined {
  const f = statFields(pid);
  return f ? Number(f[2]) : undefined;
}

/**
 * Signs of life of a running daemon, for waits that should last as long as it makes progress:
 * the CPU time it has used (clock ticks) and the size of its log. Undefined when it is not running.
 */
export function daemonActivity(
  pidFile: string,
  marker: string,
): { pid: number; cpuTicks: number; logBytes: number } | undefined {
  const pid = runningPid(pidFile, marker);
  const f = pid === undefined ? undefined : statFields(pid);
  if (pid === undefined || !f) return undefined;
  let logBytes = 0;
  try {
    logBytes = fs.statSync(logFileOf(pidFile)).size;
  } catch {
    // no log yet
  }
  // utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after the command name.
  const cpuTicks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(f[i] ?? 0), 0);
  return { pid, cpuTicks, logBytes };
}

/**
 * Signs of life of the program a daemon runs: for a supervised daemon its program's (`pending`
 * while the supervisor runs but its program does not: not started yet, or between restarts), for
 * any other daemon its own. Undefined when the daemon (the supervisor) is not running.
 */
export function programActivity(
  pidFile: string,
  marker: string,
): { pid: number; cpuTicks: number; logBytes: number } | 'pending' | undefined {
  const pid = runningPid(pidFile, marker);
  if (pid === undefined) return undefined;
  if (!(cmdline(pid) ?? '').includes(' supervise --marker=')) return daemonActivity(pidFile, marker);
  const program = daemonActivity(childPidFile(pidFile), marker);
  if (!program) return 'pending';
  // The program writes to its supervisor's log.
  return { ...program, logBytes: daemonActivity(pidFile, marker)?.logBytes ?? program.logBytes };
}

/** The last lines of a daemon's log, for error messages. */
export function logTail(pidFile: string, lines = 15): string {
  try {
    return fs.readFileSync(logFileOf(pidFile), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---------------------------------------------------------------------------------------------
// Supervision.

export interface SuperviseOptions {
  /** A run shorter than this that ends abnormally counts as a quick failure (default 30 s). */
  quickMs?: number;
  /** Consecutive quick failures after which the supervisor gives up (default 5). */
  maxQuickFailures?: number;
  /** First restart delay, doubled after each quick failure up to `maxBackoffMs` (default 500 ms, 30 s). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** What stops the program when the supervisor is stopped (default SIGTERM; PostgreSQL's fast shutdown: SIGINT). */
  stopSignal?: NodeJS.Signals;
}

interface SupervisorConfig {
  file: string;
  args: string[];
  pidFile: string;
  options: SuperviseOptions;
}

/** The supervised program's PID file, beside the supervisor's (not `*.pid`: stopping the supervisor stops it). */
export function childPidFile(pidFile: string): string {
  return `${pidFile}.child`;
}

/** The PID of a supervised daemon's program (not its supervisor) while it runs. */
export function supervisedPid(pidFile: string, marker: string): number | undefined {
  return runningPid(childPidFile(pidFile), marker);
}

function supervisorScript(): string {
  // Compiled, this file is dist/util/daemon.js; the tests run it from src/ and use the build.
  return __filename.endsWith('.js') ? __filename : path.join(packageRoot, 'dist', 'util', 'daemon.js');
}

/**
 * Starts `spec.file` under a supervisor, detached like any daemon. The PID file holds the
 * supervisor's PID (so `runningPid` and `stopDaemon` see the pair as one daemon) and the log gets
 * the supervisor's lines between the program's. A program that is node itself is also made to exit
 * when its supervisor is gone, however it went, so it is never left behind on its own.
 */
export function startSupervisedDaemon(spec: DaemonSpec, options: SuperviseOptions = {}): number {
  const config: SupervisorConfig = { file: spec.file, args: spec.args, pidFile: spec.pidFile, options };
  return startDaemon({
    ...spec,
    file: process.execPath,
    args: [supervisorScript(), 'supervise', `--marker=${spec.marker}`, JSON.stringify(config)],
  });
}

const EXIT_WITH_PARENT = 'MESHFLOW_EXIT_WITH_PARENT';

async function supervise(config: SupervisorConfig): Promise<void> {
  const quickMs = config.options.quickMs ?? 30_000;
  const maxQuickFailures = config.options.maxQuickFailures ?? 5;
  const firstBackoff = config.options.backoffMs ?? 500;
  const maxBackoff = config.options.maxBackoffMs ?? 30_000;
  const name = path.basename(config.pidFile, '.pid');
  const say = (line: string) => {
    process.stderr.write(`${new Date().toISOString()} [meshflow supervisor ${process.pid}] ${name} ${line}\n`);
  };
  const node = config.file === process.execPath;
  let child: ChildProcess | undefined;
  let stopping = false;
  let wake: () => void = () => undefined;
  const stop = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    say(`${sig}: stopping${child?.pid ? ` pid ${child.pid}` : ''}`);
    child?.kill(config.options.stopSignal ?? 'SIGTERM');
    wake();
  };
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => stop(sig));
  process.on('SIGHUP', () => undefined);

  let quickFailures = 0;
  let backoff = firstBackoff;
  while (!stopping) {
    const startedAt = Date.now();
    child = spawn(config.file, [...(node ? ['--require', supervisorScript()] : []), ...config.args], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: node ? { ...process.env, [EXIT_WITH_PARENT]: String(process.pid) } : process.env,
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
      child!.once('exit', (code, sig) => resolve({ code, signal: sig }));
      child!.once('error', (error) => resolve({ code: null, signal: null, error }));
    });
    if (child.pid !== undefined) {
      fs.writeFileSync(childPidFile(config.pidFile), `${child.pid}\n`);
      say(`started: pid ${child.pid}`);
    }
    const end = await exited;
    fs.rmSync(childPidFile(config.pidFile), { force: true });
    child = undefined;
    const ran = Date.now() - startedAt;
    const how = end.error
      ? `could not start (${end.error.message})`
      : end.signal
        ? `killed by ${end.signal}`
        : `exited with code ${end.code}`;
    if (stopping) {
      say(`stopped (${how})`);
      break;
    }
    if (end.code === 0) {
      say(`exited normally after ${(ran / 1000).toFixed(1)} s: not restarting`);
      break;
    }
    if (ran >= quickMs) {
      quickFailures = 0;
      backoff = firstBackoff;
    } else {
      quickFailures++;
    }
    if (quickFailures >= maxQuickFailures) {
      say(
        `${how} after ${(ran / 1000).toFixed(1)} s: ${quickFailures} exits in a row, each within ${quickMs / 1000} s ` +
          'of starting; giving up (the reason is in the lines above)',
      );
      process.exitCode = 1;
      break;
    }
    say(`${how} after ${(ran / 1000).toFixed(1)} s: restarting in ${(backoff / 1000).toFixed(1)} s`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, backoff);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    wake = () => undefined;
    if (quickFailures > 0) backoff = Math.min(backoff * 2, maxBackoff);
  }
  // The PID file is ours to remove unless a newer daemon has taken it over.
  if (readPid(config.pidFile) === process.pid) fs.rmSync(config.pidFile, { force: true });
}

/**
 * In a node program started by a supervisor (preloaded with --require): once the supervisor is
 * gone, shut down as on SIGTERM, and exit for good 10 s later. The variable is removed at once so
 * that node programs this one starts do not inherit it.
 */
function exitWithParent(): void {
  const parent = Number(process.env[EXIT_WITH_PARENT]);
  delete process.env[EXIT_WITH_PARENT];
  if (!Number.isInteger(parent) || parent <= 0) return;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    process.stderr.write(`[meshflow] supervisor ${parent} is gone: stopping\n`);
    setTimeout(() => process.exit(1), 10_000).unref();
    process.kill(process.pid, 'SIGTERM');
  }, 1000);
  timer.unref();
}

if (process.env[EXIT_WITH_PARENT]) exitWithParent();

if (require.main === module && process.argv[2] === 'supervise') {
  supervise(JSON.parse(process.argv[process.argv.length - 1]) as SupervisorConfig).catch((err: unknown) => {
    process.stderr.write(`[meshflow supervisor ${process.pid}] failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
