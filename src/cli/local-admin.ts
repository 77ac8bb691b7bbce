// `meshflow local status|stop`: what local mode runs on this machine (the dev server, the
// background workers, the local clusters' processes) and stopping all of it.
import fs from 'node:fs';
import path from 'node:path';
import { LocalClusters } from '../local/clusters';
import { stateDir } from '../paths';
import { localAddress, uiPortOf } from '../temporal/connection';
import { logFileOf, runningPid, stopDaemon, supervisedPid } from '../util/daemon';
import { sweepDaemons } from '../util/sweep';
import { workerFiles } from './local-mode';

export interface LocalProcess {
  /** What it is: `dev server`, `worker`, `etcd`, `<cluster> apiserver`... */
  what: string;
  running: boolean;
  /** Its PID (supervised, as the dev server and workers are: the supervisor's; `child` is the program's). */
  pid?: number;
  child?: number;
  /** Where it serves, when it does. */
  address?: string;
  log: string;
}

export interface LocalCluster {
  name: string;
  /** The mesh and cluster it belongs to, as its owner.json says. */
  mesh?: string;
  cluster?: string;
  running: boolean;
  server: string;
  processes: LocalProcess[];
}

export interface LocalStatus {
  stateDir: string;
  devServer: LocalProcess & { ui: string; database: string };
  workers: LocalProcess[];
  etcd: LocalProcess;
  clusters: LocalCluster[];
}

function daemon(what: string, pidFile: string, marker: string, address?: string): LocalProcess {
  const pid = runningPid(pidFile, marker);
  return {
    what,
    running: pid !== undefined,
    ...(pid ? { pid } : {}),
    ...(address ? { address } : {}),
    log: logFileOf(pidFile),
  };
}

/** A daemon that may run under a supervisor: `pid` is the supervisor's, `child` its program's. */
function supervised(what: string, pidFile: string, marker: string, address?: string): LocalProcess {
  const p = daemon(what, pidFile, marker, address);
  const child = supervisedPid(pidFile, marker);
  return { ...p, ...(child ? { child } : {}) };
}

/** The worker folders of local mode: its own dev server's, and one for each other Temporal it served. */
function workerDirs(): Array<{ label: string; dir: string; pidFile: string }> {
  const own = workerFiles();
  const targets = path.join(own.dir, 'targets');
  const others = fs.existsSync(targets) ? fs.readdirSync(targets).map((t) => path.join(targets, t)) : [];
  return [
    { label: 'worker', dir: own.dir, pidFile: own.pidFile },
    ...others.map((dir) => ({ label: `worker (${path.basename(dir)})`, dir, pidFile: path.join(dir, 'worker.pid') })),
  ].filter((w) => fs.existsSync(w.pidFile));
}

export function localStatus(): LocalStatus {
  const state = stateDir();
  const temporal = path.join(state, 'temporal');
  const workers = workerDirs().map(({ label, dir, pidFile }) => supervised(label, pidFile, dir));
  const clusters = new LocalClusters(state, { kubeApiserver: '', etcd: '' });
  const etcdDir = path.join(clusters.root, 'etcd');
  return {
    stateDir: state,
    devServer: {
      ...supervised('dev server', path.join(temporal, 'temporal.pid'), temporal, localAddress()),
      ui: `http://127.0.0.1:${uiPortOf(localAddress())}`,
      database: path.join(temporal, 'temporal.db'),
    },
    workers,
    etcd: daemon('etcd', path.join(etcdDir, 'etcd.pid'), etcdDir),
    clusters: clusters.list().map((c) => {
      const dir = path.dirname(c.kubeconfig);
      const owner = readOwner(dir);
      const pidFiles = fs.readdirSync(dir).filter((f) => f.endsWith('.pid'));
      return {
        name: c.name,
        ...owner,
        running: c.running,
        server: c.server,
        processes: pidFiles.map((f) => daemon(f.replace(/\.pid$/, ''), path.join(dir, f), dir)),
      };
    }),
  };
}

function readOwner(dir: string): { mesh?: string; cluster?: string } {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'owner.json'), 'utf8')) as { mesh: string; cluster: string };
  } catch {
    return {};
  }
}

export class LocalClustersRunningError extends Error {
  override name = 'LocalClustersRunningError';
}

/**
 * Stops local mode: the workers first (so that none starts a step on a cluster going away), then
 * the local clusters' processes (their data stays), then the dev server; last, any other process
 * meshflow started under the state directory. Refuses while local clusters run, which are
 * meshes' clusters, unless `force`: their workflows stay in the dev server's database, and a later
 * `meshflow down` still deletes them.
 */
export async function localStop(opts: { force?: boolean } = {}): Promise<string[]> {
  const status = localStatus();
  const running = status.clusters.filter((c) => c.running);
  if (running.length > 0 && !opts.force) {
    const meshes = new Map<string, string[]>();
    for (const c of running)
      meshes.set(c.mesh ?? c.name, [...(meshes.get(c.mesh ?? c.name) ?? []), c.cluster ?? c.name]);
    const list = [...meshes].map(([mesh, cs]) => `${mesh} (${cs.join(', ')})`).join(', ');
    throw new LocalClustersRunningError(
      `local clusters of open meshes are running: ${list}. Tear the meshes down first ` +
        `(\`meshflow down <mesh> --wait\`), or pass --force: their clusters stop with the rest, their ` +
        `workflows stay, and \`meshflow down\` still deletes them later`,
    );
  }
  const stopped: string[] = [];
  const state = stateDir();
  const workers = workerDirs().filter(({ pidFile, dir }) => runningPid(pidFile, dir) !== undefined);
  await Promise.all(workers.map(({ pidFile, dir }) => stopDaemon(pidFile, dir)));
  stopped.push(...workers.map((w) => w.label));
  if (running.length > 0 || status.etcd.running) {
    await new LocalClusters(state, { kubeApiserver: '', etcd: '' }).stop();
    stopped.push(...running.map((c) => `cluster ${c.name}`), ...(status.etcd.running ? ['etcd'] : []));
  }
  const temporal = path.join(state, 'temporal');
  if (await stopDaemon(path.join(temporal, 'temporal.pid'), temporal)) stopped.push('dev server');
  if (fs.existsSync(state)) stopped.push(...(await sweepDaemons(state)));
  return stopped;
}

/** `meshflow local status` as text: one line a process. */
export function renderLocalStatus(s: LocalStatus): string {
  const state = (p: LocalProcess) =>
    !p.running ? 'stopped' : p.child ? `running  pid ${p.child} (supervisor ${p.pid})` : `running  pid ${p.pid}`;
  const line = (p: LocalProcess, extra = '') =>
    `  ${p.what.padEnd(24)} ${state(p)}${p.address ? `  ${p.address}` : ''}${extra}  log ${p.log}`;
  const out = [`local mode in ${s.stateDir}`, line(s.devServer, `  Web UI ${s.devServer.ui}`)];
  out.push(...(s.workers.length ? s.workers.map((w) => line(w)) : ['  worker                   never started']));
  if (s.clusters.length === 0) out.push('  no local clusters');
  else {
    out.push(line(s.etcd));
    for (const c of s.clusters) {
      out.push(
        `  cluster ${c.name}${c.mesh ? ` (mesh ${c.mesh}, cluster ${c.cluster})` : ''}: ` +
          `${c.running ? 'running' : 'stopped'}, ${c.server}`,
      );
      for (const p of c.processes) out.push(`  ${line(p)}`);
    }
  }
  const anything = s.devServer.running || s.workers.some((w) => w.running) || s.clusters.some((c) => c.running);
  out.push(anything ? 'stop all of it: meshflow local stop' : 'nothing runs');
  return out.join('\n') + '\n';
}
