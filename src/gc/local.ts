// gc on this machine: local clusters and their owners, mesh directories and what they hold.
import fs from 'node:fs';
import path from 'node:path';
import { LocalClusters } from '../local/clusters';
import { runningPid } from '../util/daemon';
import { DNS_LABEL } from './types';

// ---------------------------------------------------------------------------------------------
// The state directory: local clusters and their owners, mesh directories.

/** Written by LocalProvider.create into each local cluster's directory: {"mesh", "cluster"}. */
const OWNER_FILE = 'owner.json';

export interface LocalEntry {
  name: string;
  dir: string;
  kubeconfig: string;
  running: boolean;
  /** The mesh that owns it; several when its owner was not recorded and its name splits more than one way. */
  owners: string[];
  recorded: boolean;
}

/**
 * Whose local cluster this is. LocalProvider names clusters "<mesh>-<cluster>" and records the
 * owner in owner.json; a cluster made before that record existed is owned by one of the meshes
 * its name can start with (both parts DNS labels). None: not a mesh's cluster, never deleted.
 */
export function localClusterOwners(name: string, dir: string): { owners: string[]; recorded: boolean } {
  try {
    const o = JSON.parse(fs.readFileSync(path.join(dir, OWNER_FILE), 'utf8')) as { mesh?: unknown };
    if (typeof o.mesh === 'string' && DNS_LABEL.test(o.mesh) && name.startsWith(`${o.mesh}-`)) {
      return { owners: [o.mesh], recorded: true };
    }
  } catch {
    // no record (an older meshflow made it): the name has to do
  }
  const owners: string[] = [];
  for (let i = name.indexOf('-'); i > 0; i = name.indexOf('-', i + 1)) {
    if (DNS_LABEL.test(name.slice(0, i)) && DNS_LABEL.test(name.slice(i + 1))) owners.push(name.slice(0, i));
  }
  return { owners, recorded: false };
}

export function localEntries(stateDir: string): LocalEntry[] {
  // list() reads the cluster records only; the tools are needed to start or delete clusters.
  const clusters = new LocalClusters(stateDir, { kubeApiserver: '', etcd: '' }).list();
  return clusters.map((c) => {
    const dir = path.dirname(c.kubeconfig);
    return { name: c.name, dir, kubeconfig: c.kubeconfig, running: c.running, ...localClusterOwners(c.name, dir) };
  });
}

/** Files under `dir` (relative), directories ending in "/" when empty. */
export function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  const entries = fs.readdirSync(path.join(dir, rel), { withFileTypes: true });
  if (entries.length === 0 && rel) return [`${rel}/`];
  for (const e of entries) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...walk(dir, p));
    else out.push(p);
  }
  return out;
}

export function lockHolder(lockDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(lockDir, 'pid'), 'utf8'));
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? -1 : undefined;
  }
}

/** What a garbage mesh directory holds: running daemons, held locks, and files gc does not know. */
export function inspectMeshDir(dir: string) {
  const files = walk(dir);
  const lockDirs = [...new Set(files.map((f) => /^(.*\.lock)\//.exec(f)?.[1]).filter((l): l is string => Boolean(l)))];
  const held = lockDirs
    .map((l) => ({ lock: l, pid: lockHolder(path.join(dir, l)) }))
    .filter((l) => l.pid !== undefined);
  const daemons = files
    .filter((f) => f.endsWith('.pid'))
    .map((f) => ({ pidFile: path.join(dir, f), pid: runningPid(path.join(dir, f), dir) }))
    .filter((d): d is { pidFile: string; pid: number } => d.pid !== undefined);
  const known = (f: string) =>
    f === 'ca' ||
    f.startsWith('ca/') ||
    f.endsWith('.pid') ||
    f.endsWith('.log') ||
    lockDirs.some((l) => f.startsWith(`${l}/`));
  return { held, daemons, others: files.filter((f) => !known(f)) };
}
