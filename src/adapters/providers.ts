// Reaching a cluster through its ClusterAccess: a Kubernetes client, or a kubeconfig file for a
// program (istioctl). The provider contract itself is src/providers/contract.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SharedTlsKubeConfig } from '../util/kube-config';
import { Kube } from './kube';
import type { ClusterAccess } from './access';

export { PermanentError } from '../util/errors';

export type { ClusterAccess } from './access';

export type { IstiodRunner } from '../local/istiod-runner';

export function kubeFor(access: ClusterAccess, signal?: AbortSignal): Kube {
  if (!access.token && access.config === undefined) return Kube.fromFile(access.kubeconfig, access.context, signal);
  const kc = new SharedTlsKubeConfig();
  if (access.config !== undefined) kc.loadFromString(access.config);
  else kc.loadFromFile(access.kubeconfig);
  if (access.context) kc.setCurrentContext(access.context);
  if (!access.token) return new Kube(kc, signal);
  const user = kc.getCurrentUser();
  // The token only: not also the exec plugin the file names for other programs (gke-gcloud-auth-plugin).
  kc.users = kc.users.map((u) => (u.name === user?.name ? { name: u.name, token: access.token } : u));
  return new Kube(kc, signal);
}

/**
 * Runs `fn` with a kubeconfig file a separate program (istioctl) can use. When the access carries
 * its token (GKE) or its whole kubeconfig (from the trust store) in memory, that is a copy,
 * readable by this user only, in a private temporary directory, and removed when `fn` is done.
 */
export async function withKubeconfigFile<T>(access: ClusterAccess, fn: (file: string) => Promise<T>): Promise<T> {
  if (!access.token && access.config === undefined) return fn(access.kubeconfig);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshflow-kubeconfig-'));
  try {
    const kc = kubeFor(access).config;
    const file = path.join(dir, 'kubeconfig');
    fs.writeFileSync(file, kc.exportConfig(), { mode: 0o600 });
    return await fn(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
