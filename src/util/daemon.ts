// Long-lived child processes (etcd, API servers, the local Temporal server) that outlive the
// command that started them: detached into their own session, output to a log file, PID in a
// file. A PID is trusted only while /proc says the process still runs the same program with the
// same state directory on its command line, so a recycled PID is never signalled.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
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

/** Stops the daemon (SIGTERM, then SIGKILL after `graceMs`) and removes its PID file. */
export async function stopDaemon(pidFile: string, marker: string, graceMs = 10_000): Promise<boolean> {
  const pid = runningPid(pidFile, marker);
  let stopped = false;
  if (pid !== undefined) {
    signal(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (runningPid(pidFile, marker) !== undefined && Date.now() < deadline) await sleep(50);
    if (runningPid(pidFile, marker) !== undefined) {
      signal(pid, 'SIGKILL');
      while (runningPid(pidFile, marker) !== undefined) await sleep(20);
    }
    stopped = true;
  }
  fs.rmSync(pidFile, { force: true });
  return stopped;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** The last lines of a daemon's log, for error messages. */
export function logTail(pidFile: string, lines = 15): string {
  try {
    return fs.readFileSync(logFileOf(pidFile), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
