// Host affinity. CA keys, local clusters and kubeconfig files live on one worker's disk, so every
// step of a mesh runs on the worker host that claimed it: each worker also polls a task queue of
// its own host, and `claimHost` (run from the shared queue, by whichever worker picks it up) names
// that queue. With several workers, meshes spread across hosts; a mesh's steps stay on its host.
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';

export interface HostClaim {
  host: string;
  taskQueue: string;
}

export interface HostActivities {
  claimHost(): Promise<HostClaim>;
}

/** This worker's host identity: MESHFLOW_HOST_ID, or the machine's name and its state directory. */
export function hostId(stateDir: string): string {
  const digest = crypto.createHash('sha256').update(path.resolve(stateDir)).digest('hex').slice(0, 8);
  return process.env.MESHFLOW_HOST_ID || `${os.hostname()}-${digest}`;
}

export const hostTaskQueue = (sharedQueue: string, host: string) => `${sharedQueue}@${host}`;

export function hostActivities(claim: HostClaim): HostActivities {
  return { claimHost: async () => claim };
}
