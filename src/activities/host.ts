// Host affinity. CA keys, local clusters and kubeconfig files live on one worker's disk, so every
// step of a mesh runs on the worker host that claimed it: each worker also polls a task queue of
// its own host, and `claimHost` (run from the shared queue, by whichever worker picks it up) names
// that queue. With several workers, meshes spread across hosts; a mesh's steps stay on its host.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface HostClaim {
  host: string;
  taskQueue: string;
  /** This worker keeps trust material where every worker reaches it (MESHFLOW_TRUST_STORE=kubernetes:...). */
  sharedTrust?: boolean;
}

export interface HostActivities {
  claimHost(): Promise<HostClaim>;
}

/**
 * This worker's host identity: MESHFLOW_HOST_ID, else the one written in the state directory
 * (`host-id`) the first time, from the machine's name and the directory. Read from there, it
 * survives a re-created container that keeps its volume, whose hostname is new: the meshes that
 * host claimed are still served by it.
 */
export function hostId(stateDir: string): string {
  if (process.env.MESHFLOW_HOST_ID) return process.env.MESHFLOW_HOST_ID;
  const file = path.join(stateDir, 'host-id');
  const written = () => {
    try {
      return fs.readFileSync(file, 'utf8').trim() || undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  };
  const known = written();
  if (known) return known;
  const digest = crypto.createHash('sha256').update(path.resolve(stateDir)).digest('hex').slice(0, 8);
  fs.mkdirSync(stateDir, { recursive: true });
  try {
    fs.writeFileSync(file, `${os.hostname()}-${digest}\n`, { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // another process wrote it first
  }
  return written()!;
}

export const hostTaskQueue = (sharedQueue: string, host: string) => `${sharedQueue}@${host}`;

export function hostActivities(claim: HostClaim): HostActivities {
  return { claimHost: async () => claim };
}
