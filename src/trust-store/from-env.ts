// The trust store a worker uses, from MESHFLOW_TRUST_STORE: unset or `state-dir` for the state
// directory, `kubernetes:<kubeconfig>[#context]/<namespace>` for Secrets in a management cluster.
// Read once when the worker starts; a wrong value stops it with the part that is wrong. Messages
// name paths, contexts and namespaces, never what a kubeconfig holds.
import fs from 'node:fs';
import path from 'node:path';
import { SharedTlsKubeConfig } from '../util/kube-config';
import { KubernetesTrustStore } from './kubernetes';
import { StateDirTrustStore } from './state-dir';
import type { TrustStore } from './store';

export const TRUST_STORE_VAR = 'MESHFLOW_TRUST_STORE';
const FORM = 'kubernetes:<kubeconfig>[#context]/<namespace>';
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface KubernetesStoreLocation {
  kubeconfig: string;
  context?: string;
  namespace: string;
}

const wrong = (why: string) => new Error(`${TRUST_STORE_VAR}: ${why}`);

/**
 * The parts of `kubernetes:<kubeconfig>[#context]/<namespace>`. The namespace follows the last '/'
 * and the context the first '#', so a context may hold '/' (EKS contexts are ARNs).
 */
export function parseKubernetesLocation(value: string): KubernetesStoreLocation {
  const rest = value.slice('kubernetes:'.length);
  const slash = rest.lastIndexOf('/');
  if (slash < 0) throw wrong(`"${value}" has no namespace: expected ${FORM}`);
  const namespace = rest.slice(slash + 1);
  const hash = rest.slice(0, slash).indexOf('#');
  const kubeconfig = hash < 0 ? rest.slice(0, slash) : rest.slice(0, hash);
  const context = hash < 0 ? undefined : rest.slice(hash + 1, slash);
  if (!kubeconfig) throw wrong(`"${value}" has no kubeconfig path: expected ${FORM}`);
  if (context === '') throw wrong(`"${value}" has an empty context after '#': name one, or leave out '#'`);
  if (!DNS_LABEL.test(namespace)) {
    throw wrong(`namespace "${namespace}" is not a Kubernetes namespace name (lowercase letters, digits, '-')`);
  }
  return { kubeconfig: path.resolve(kubeconfig), context, namespace };
}

/** A Kubernetes store at `where`, its kubeconfig read and its context checked now. */
export function kubernetesTrustStore(where: KubernetesStoreLocation): KubernetesTrustStore {
  const kc = new SharedTlsKubeConfig();
  let text: string;
  try {
    text = fs.readFileSync(where.kubeconfig, 'utf8');
  } catch (err) {
    throw wrong(`kubeconfig ${where.kubeconfig} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    kc.loadFromString(text);
  } catch {
    // The parser's message may quote the file, keys included: say only what is wrong.
    throw wrong(`kubeconfig ${where.kubeconfig} is not a kubeconfig file`);
  }
  const contexts = kc.getContexts().map((c) => c.name);
  if (where.context) {
    if (!contexts.includes(where.context)) {
      const has = contexts.join(', ') || 'none';
      throw wrong(`context "${where.context}" is not in kubeconfig ${where.kubeconfig} (it has: ${has})`);
    }
    kc.setCurrentContext(where.context);
  }
  const context = kc.getCurrentContext();
  if (!context || !kc.getCurrentCluster()) {
    throw wrong(`kubeconfig ${where.kubeconfig} has no current context with a cluster: name one after '#'`);
  }
  return new KubernetesTrustStore(kc, where.namespace, `kubeconfig ${where.kubeconfig}, context ${context}`);
}

/** Where MESHFLOW_TRUST_STORE puts the Kubernetes store; undefined for the state directory (unset or `state-dir`). */
export function kubernetesLocationFromEnv(env: NodeJS.ProcessEnv = process.env): KubernetesStoreLocation | undefined {
  const value = env[TRUST_STORE_VAR]?.trim();
  if (!value || value === 'state-dir') return undefined;
  if (value.startsWith('kubernetes:')) return parseKubernetesLocation(value);
  throw wrong(`"${value}" is not a trust store: use state-dir (the default) or ${FORM}`);
}

/** The store MESHFLOW_TRUST_STORE names (the state directory when it is unset). */
export function trustStoreFromEnv(stateDir: string, env: NodeJS.ProcessEnv = process.env): TrustStore {
  const where = kubernetesLocationFromEnv(env);
  return where ? kubernetesTrustStore(where) : new StateDirTrustStore(stateDir);
}
