// The checks of a mesh, each reported on its own with the likely cause and fix when it fails:
// control-plane checks on every provider, then the traffic checks (./traffic.ts), which need
// running pods and are reported as not supported on local clusters, never as passed.
//
// A check fails only on a definite answer (a 404 for something that must exist, a 403, wrong
// contents). Transient errors (5xx, 429, connection resets and refusals, timeouts) are retried
// with a short backoff, heartbeating, until they have lasted `retryBudgetMs` (30 s) in a check
// without a success in between; an error that persists that long is no verdict about the mesh, so
// verifyMesh throws ChecksUnavailableError and the activity fails and is retried by Temporal
// instead of reporting the check as failed.
import https from 'node:https';
import * as k8s from '@kubernetes/client-node';
import { SharedTlsKubeConfig } from '../adapters/kube-config';
import { type ClusterAccess, kubeFor } from '../adapters/providers';
import { type Heartbeat, loadBalancerAddress } from '../adapters/kube';
import {
  EASTWEST_SERVICE,
  ISTIO_NAMESPACE,
  NETWORK_LABEL,
  READER_SERVICE_ACCOUNT,
  istiodDeployment,
  remoteSecretName,
} from '../istio/manifests';
import { AMBIENT_EASTWEST_GATEWAY } from '../istio/ambient';
import { buildPlan, linkPairs } from '../plan/plan';
import type { MeshSpec } from '../spec/schema';
import { sleep } from '../util/net';
import type { CheckResult } from '../steps/contract';
import { type Call, ChecksUnavailableError, type Verdict, fail, notFound, pass } from './result';
import { eastWestGateway } from './ambient';
import { istioChecks } from './istio';
import { tagOf } from '../istio/revisions';
import { type TrafficPort, trafficChecks } from './traffic';

export interface VerifyOptions {
  /** How long a check's transient errors may last, without a success, before verifyMesh throws (default 30 s). */
  retryBudgetMs?: number;
  /** First wait after a transient error (default 250 ms); doubles up to maxBackoffMs (default 4 s), with jitter. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** One API request that has not answered after this long is abandoned as a transient timeout (default 10 s). */
  requestTimeoutMs?: number;
  /** Requests in flight at once when the reader's rights are reviewed namespace by namespace (default 16). */
  concurrency?: number;
  /** Aborts requests and waits at once (the activity was cancelled); its reason is thrown as it is. */
  signal?: AbortSignal;
  /** The pinned istioctl, for the `analyze` check (not run without it). */
  istioctl?: string;
  /** The mesh's root certificate (PEM), for the `trust-chain` check (not supported without it). */
  meshRoot?: string;
}

type Optional = 'signal' | 'istioctl' | 'meshRoot';
type Options = Required<Omit<VerifyOptions, Optional>> & Pick<VerifyOptions, Optional>;

const DEFAULTS: Options = {
  retryBudgetMs: 30_000,
  initialBackoffMs: 250,
  maxBackoffMs: 4_000,
  requestTimeoutMs: 10_000,
  concurrency: 16,
};

// ---------------------------------------------------------------------------------------------
// Error classification

const TRANSIENT_NET_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

type ErrorShape = { code?: unknown; name?: unknown; type?: unknown; message?: unknown; cause?: unknown };

/**
 * `transient` for errors worth retrying: HTTP 5xx, 429 and 408 (an ApiException from
 * @kubernetes/client-node or any error with a numeric `.code`), network errors whose `.code` is a
 * transient errno (ECONNRESET, ECONNREFUSED, ETIMEDOUT, ...; node-fetch's FetchError copies it),
 * "socket hang up", request timeouts and aborts (also when found in `.cause`). Everything else is
 * `definite`: 4xx answers, TLS verification errors, unknown hosts, wrong contents.
 */
export function classifyError(err: unknown): 'transient' | 'definite' {
  let e = err as ErrorShape | undefined;
  for (let depth = 0; e && typeof e === 'object' && depth < 5; e = e.cause as ErrorShape, depth++) {
    if (typeof e.code === 'number') return e.code >= 500 || e.code === 429 || e.code === 408 ? 'transient' : 'definite';
    if (typeof e.code === 'string' && TRANSIENT_NET_CODES.has(e.code)) return 'transient';
    if (e.name === 'AbortError' || e.name === 'TimeoutError') return 'transient';
    if (e.type === 'request-timeout' || e.type === 'body-timeout' || e.type === 'aborted') return 'transient';
    const message = typeof e.message === 'string' ? e.message : '';
    if (/socket hang up|network timeout|request timed out/i.test(message)) return 'transient';
  }
  return 'definite';
}

/** One line that says what went wrong: `404 secrets "cacerts" not found` rather than the client's dump. */
export function describeError(err: unknown): string {
  const e = err as { code?: unknown; body?: unknown; message?: string };
  if (typeof e?.code === 'number') {
    let body = e.body;
    if (typeof body === 'string') {
      try {
        body = JSON.parse(body);
      } catch {
        // not a Status object
      }
    }
    const message = (body as { message?: string } | undefined)?.message;
    if (message) return `${e.code} ${message}`;
    const first = String(e.message ?? '').split('\n')[0];
    return first.startsWith('HTTP-Code') ? `HTTP ${e.code}` : first;
  }
  const first = String(e?.message ?? err).split('\n')[0];
  return typeof e?.code === 'string' && !first.includes(e.code) ? `${e.code}: ${first}` : first;
}

// ---------------------------------------------------------------------------------------------
// Retrying

interface Attempts {
  /** Since when this check's requests have met only transient errors (unset after any success). */
  failingSince?: number;
  opts: Options;
  heartbeat: Heartbeat;
  label: string;
  retries: number;
}

/**
 * Runs `fn`, retrying transient errors with backoff while the check's transient errors have not
 * lasted `retryBudgetMs` without a success in between (a big check that keeps getting answers
 * keeps its budget); rethrows anything else at once, and the last transient error after that.
 */
async function retrying<T>(a: Attempts, fn: () => Promise<T>): Promise<T> {
  let delay = a.opts.initialBackoffMs;
  for (;;) {
    try {
      const result = await fn();
      a.failingSince = undefined;
      return result;
    } catch (err) {
      a.opts.signal?.throwIfAborted();
      if (classifyError(err) !== 'transient') throw err;
      a.failingSince ??= Date.now();
      const left = a.failingSince + a.opts.retryBudgetMs - Date.now();
      if (left <= 0) throw err;
      a.retries++;
      const wait = Math.min(left, delay * (0.5 + Math.random() / 2));
      const beat = () => a.heartbeat({ verifying: a.label, retrying: describeError(err), retries: a.retries });
      // Heartbeat at least every 2 s however long the wait.
      for (let waited = 0; waited < wait; waited += 2_000) {
        beat();
        await pause(Math.min(2_000, wait - waited), a.opts.signal);
      }
      delay = Math.min(delay * 2, a.opts.maxBackoffMs);
    }
  }
}

/**
 * One check: transient errors are retried (each request through `call`, and the check as a whole)
 * until they have lasted `retryBudgetMs` without a success; a definite error is a failed check;
 * transient errors that outlast the budget throw ChecksUnavailableError.
 */
export async function runCheck(
  name: string,
  cluster: string | undefined,
  fn: (call: Call) => Promise<Verdict>,
  heartbeat: Heartbeat,
  options: VerifyOptions = {},
): Promise<CheckResult> {
  const opts = { ...DEFAULTS, ...options };
  const label = cluster ? `${name} (${cluster})` : name;
  const a: Attempts = { opts, heartbeat, label, retries: 0 };
  const call: Call = (f) => retrying(a, f);
  const where = cluster ? { cluster } : {};
  try {
    return { name, ...where, ...(await retrying(a, () => fn(call))) };
  } catch (err) {
    if (err instanceof ChecksUnavailableError || opts.signal?.aborted) throw err;
    if (classifyError(err) === 'transient') {
      const seconds = ((Date.now() - (a.failingSince ?? Date.now())) / 1000).toFixed(1);
      throw new ChecksUnavailableError(
        `check ${label} got no definite answer in ${seconds}s (${a.retries} retries), ` +
          `last error: ${describeError(err)}. ` +
          'This says nothing about the mesh; the verification is retried.',
      );
    }
    return { name, ...where, status: 'failed', detail: describeError(err) };
  }
}

/** Waits `ms`, or less when `signal` aborts (then throws its reason). */
async function pause(ms: number, signal?: AbortSignal): Promise<void> {
  if (!signal) return sleep(ms);
  signal.throwIfAborted();
  await new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
  signal.throwIfAborted();
}

/** Keep-alive agents of one verification, destroyed when it ends. */
class Agents {
  private readonly all: https.Agent[] = [];

  /**
   * The client makes a fresh agent (and so a TLS handshake) per request; a plain HTTPS agent is
   * swapped for one keep-alive agent with the same options per kubeconfig, which halves the time
   * of a namespace-by-namespace review. Proxy agents are left as they are.
   */
  reuse(): (made: unknown) => unknown {
    let shared: https.Agent | undefined;
    return (made) => {
      if (!(made instanceof https.Agent) || made.constructor !== https.Agent) return made;
      if (!shared) this.all.push((shared = new https.Agent({ ...made.options, keepAlive: true })));
      return shared;
    };
  }

  destroy(): void {
    for (const a of this.all) a.destroy();
  }
}

/**
 * An API client whose requests give up after `timeoutMs` (an abort, classified as transient), or
 * when `signal` aborts.
 */
function apiClient<T>(
  kc: k8s.KubeConfig,
  api: new (config: k8s.Configuration) => T,
  opts: Options,
  agent: (made: unknown) => unknown,
): T {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('the kubeconfig has no current cluster');
  return new api(
    k8s.createConfiguration({
      baseServer: new k8s.ServerConfiguration(server, {}),
      authMethods: { default: kc },
      promiseMiddleware: [
        {
          pre: async (ctx) => {
            const timeout = AbortSignal.timeout(opts.requestTimeoutMs);
            ctx.setSignal(opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout);
            ctx.setAgent(agent(ctx.getAgent()) as https.Agent);
            return ctx;
          },
          post: async (ctx) => ctx,
        },
      ],
    }),
  );
}

interface Clients {
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  custom: k8s.CustomObjectsApi;
  auth: k8s.AuthorizationV1Api;
  discovery: k8s.DiscoveryV1Api;
  admission: k8s.AdmissionregistrationV1Api;
}

function clients(kc: k8s.KubeConfig, opts: Options, agents: Agents): Clients {
  const agent = agents.reuse();
  const make = <T>(api: new (config: k8s.Configuration) => T) => apiClient(kc, api, opts, agent);
  return {
    core: make(k8s.CoreV1Api),
    apps: make(k8s.AppsV1Api),
    custom: make(k8s.CustomObjectsApi),
    auth: make(k8s.AuthorizationV1Api),
    discovery: make(k8s.DiscoveryV1Api),
    admission: make(k8s.AdmissionregistrationV1Api),
  };
}

// ---------------------------------------------------------------------------------------------
// Reader-only: what the remote secret's token may not do

export interface Permission {
  verb: string;
  group: string;
  resource: string;
}

const WRITE_VERBS = ['create', 'update', 'patch', 'delete', 'deletecollection'];
const GUARDED_RESOURCES = [
  { group: '', resource: 'pods' },
  { group: '', resource: 'services' },
  { group: '', resource: 'secrets' },
  { group: '', resource: 'namespaces' },
  { group: '', resource: 'serviceaccounts' },
  { group: 'apps', resource: 'deployments' },
];
const RBAC_GROUP = 'rbac.authorization.k8s.io';

/**
 * What a reader token may not do: write the kinds a leaked token could do harm with, grant itself
 * rights, or act as someone else.
 */
export const FORBIDDEN: Permission[] = [
  ...WRITE_VERBS.flatMap((verb) => GUARDED_RESOURCES.map((r) => ({ verb, ...r }))),
  ...['escalate', 'bind'].flatMap((verb) =>
    ['roles', 'clusterroles'].map((resource) => ({ verb, group: RBAC_GROUP, resource })),
  ),
  ...['users', 'groups', 'serviceaccounts'].map((resource) => ({ verb: 'impersonate', group: '', resource })),
];

/**
 * Whether a grant in one namespace (a RoleBinding there) gives this permission. Not for requests
 * that are cluster-scoped whatever the binding: creating namespaces or deleting them wholesale,
 * escalating ClusterRoles, impersonating users and groups. Updating, patching or deleting a
 * namespace is authorized in that namespace; binding a ClusterRole in a RoleBinding is, too.
 */
export function grantableInNamespace(p: Permission): boolean {
  if (p.resource === 'namespaces') return ['update', 'patch', 'delete'].includes(p.verb);
  if (p.verb === 'impersonate') return p.resource === 'serviceaccounts';
  if (p.resource === 'clusterroles') return p.verb === 'bind';
  return true;
}

const matches = (list: string[] | undefined, value: string) => !!list && (list.includes('*') || list.includes(value));

/** Whether a rule (from a SelfSubjectRulesReview) allows a permission; rules limited to resourceNames count too. */
export function ruleAllows(rule: k8s.V1ResourceRule, p: Permission): boolean {
  return matches(rule.verbs, p.verb) && matches(rule.apiGroups, p.group) && matches(rule.resources, p.resource);
}

const permissionText = (p: Permission) => `${p.verb} ${p.resource}`;

export interface ReaderRights {
  /** Forbidden permissions the token has across the cluster (every namespace, or cluster-scoped). */
  cluster: Permission[];
  /** Forbidden permissions granted in single namespaces only, by namespace. */
  namespaces: Map<string, Permission[]>;
  /** Namespaces reviewed. */
  reviewed: number;
  /** Namespaces whose rules review was incomplete or had an evaluation error: asked permission by permission. */
  fallback: string[];
  /** API requests made (retries not counted). */
  requests: number;
}

/**
 * The forbidden permissions the reader has in its cluster. Cluster scope: one
 * SelfSubjectAccessReview per forbidden permission (namespace ""). Each namespace (listed with
 * `admin`): one SelfSubjectRulesReview, matched here against the permissions a namespace grant
 * can give; where the review is `incomplete` (rules an authorizer cannot list) or has an
 * `evaluationError` (a binding RBAC could not resolve), one SelfSubjectAccessReview per such
 * permission in that namespace.
 */
export async function readerRights(
  reader: k8s.AuthorizationV1Api,
  admin: k8s.CoreV1Api,
  call: Call,
  options: VerifyOptions = {},
  progress: (done: number, of: number) => void = () => undefined,
): Promise<ReaderRights> {
  const opts = { ...DEFAULTS, ...options };
  let requests = 0;
  const access = async (p: Permission, namespace?: string, name?: string) => {
    requests++;
    const resourceAttributes = {
      verb: p.verb,
      group: p.group,
      resource: p.resource,
      ...(namespace ? { namespace } : {}),
      ...(name ? { name } : {}),
    };
    const review = await call(() => reader.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes } } }));
    return review.status?.allowed === true;
  };
  const pool = async <T, R>(items: T[], fn: (item: T) => Promise<R>): Promise<R[]> => {
    const out: R[] = new Array(items.length);
    let next = 0;
    let failed = false;
    const worker = async () => {
      // After a failure the other workers stop taking items: the check's answer is settled.
      while (!failed && next < items.length) {
        const i = next++;
        try {
          out[i] = await fn(items[i]);
        } catch (err) {
          failed = true;
          throw err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(opts.concurrency, items.length) }, worker));
    return out;
  };

  const allowed = await pool(FORBIDDEN, async (p) => ((await access(p)) ? p : undefined));
  const clusterWide = allowed.filter((p): p is Permission => !!p);
  const held = new Set(clusterWide.map(permissionText));
  const inNamespace = FORBIDDEN.filter((p) => grantableInNamespace(p) && !held.has(permissionText(p)));

  const names: string[] = [];
  let cont: string | undefined;
  do {
    requests++;
    const page = await call(() => admin.listNamespace({ limit: 500, ...(cont ? { _continue: cont } : {}) }));
    names.push(...page.items.map((n) => n.metadata!.name!));
    cont = page.metadata?._continue || undefined;
  } while (cont);

  const namespaces = new Map<string, Permission[]>();
  const fallback: string[] = [];
  let done = 0;
  await pool(names, async (namespace) => {
    requests++;
    const review = await call(() => reader.createSelfSubjectRulesReview({ body: { spec: { namespace } } }));
    let granted: Permission[];
    // Incomplete (an authorizer that cannot list rules) or an evaluation error (a binding that
    // could not be resolved): the rules may be partial, so ask about each permission instead.
    if (review.status?.incomplete || review.status?.evaluationError) {
      fallback.push(namespace);
      granted = [];
      for (const p of inNamespace) {
        if (await access(p, namespace, p.resource === 'namespaces' ? namespace : undefined)) granted.push(p);
      }
    } else {
      const rules = review.status?.resourceRules ?? [];
      granted = inNamespace.filter((p) => rules.some((r) => ruleAllows(r, p)));
    }
    if (granted.length) namespaces.set(namespace, granted);
    if (++done % 25 === 0 || done === names.length) progress(done, names.length);
  });
  return { cluster: clusterWide, namespaces, reviewed: names.length, fallback: fallback.sort(), requests };
}

/**
 * readerRights as the remote-secret check runs it: the reader's and an admin's kubeconfig, API
 * clients with request timeouts and keep-alive connections, transient errors retried.
 */
export async function reviewReader(
  reader: k8s.KubeConfig,
  admin: k8s.KubeConfig,
  options: VerifyOptions = {},
  heartbeat: Heartbeat = () => undefined,
): Promise<ReaderRights> {
  const opts = { ...DEFAULTS, ...options };
  const agents = new Agents();
  try {
    const a: Attempts = { opts, heartbeat, label: 'reader rights', retries: 0 };
    const call: Call = (f) => retrying(a, f);
    return await readerRights(clients(reader, opts, agents).auth, clients(admin, opts, agents).core, call, opts);
  } finally {
    agents.destroy();
  }
}

/** "delete secrets in cluster1; delete pods, impersonate serviceaccounts in namespace istio-system of cluster1". */
export function rightsText(rights: Pick<ReaderRights, 'cluster' | 'namespaces'>, source: string): string {
  const parts: string[] = [];
  if (rights.cluster.length) parts.push(`${rights.cluster.map(permissionText).join(', ')} in ${source}`);
  // Namespaces with the same grants are named together.
  const byGrants = new Map<string, string[]>();
  for (const [ns, perms] of [...rights.namespaces].sort(([a], [b]) => a.localeCompare(b))) {
    const key = perms.map(permissionText).join(', ');
    byGrants.set(key, [...(byGrants.get(key) ?? []), ns]);
  }
  for (const [grants, nss] of byGrants) {
    const shown = nss.length > 5 ? `${nss.slice(0, 5).join(', ')} and ${nss.length - 5} more` : nss.join(', ');
    parts.push(`${grants} in namespace${nss.length > 1 ? 's' : ''} ${shown} of ${source}`);
  }
  return parts.join('; ');
}

// ---------------------------------------------------------------------------------------------
// The checks

export async function verifyMesh(
  spec: MeshSpec,
  access: (cluster: string) => ClusterAccess,
  traffic: TrafficPort,
  heartbeat: Heartbeat,
  options: VerifyOptions = {},
): Promise<CheckResult[]> {
  const agents = new Agents();
  try {
    const opts = { ...DEFAULTS, ...options };
    const configs = Object.fromEntries(spec.clusters.map((c) => [c.name, kubeFor(access(c.name)).config]));
    const api = Object.fromEntries(spec.clusters.map((c) => [c.name, clients(configs[c.name], opts, agents)]));
    const results = await controlPlaneChecks(spec, api, heartbeat, opts, agents);
    const istio = await istioChecks({
      spec,
      access,
      kubeConfig: (cluster) => configs[cluster],
      api,
      check: (name, cluster, fn) => runCheck(name, cluster, fn, heartbeat, opts),
      istioctl: opts.istioctl,
      meshRoot: opts.meshRoot,
      signal: opts.signal,
    });
    return [...results, ...istio, ...(await trafficChecks(spec, access, traffic, heartbeat))];
  } finally {
    agents.destroy();
  }
}

async function controlPlaneChecks(
  spec: MeshSpec,
  api: Record<string, Clients>,
  heartbeat: Heartbeat,
  opts: Options,
  agents: Agents,
): Promise<CheckResult[]> {
  const plan = buildPlan(spec);
  const results: CheckResult[] = [];
  const roots = new Map<string, string>();
  const check = (name: string, cluster: string | undefined, fn: (call: Call) => Promise<Verdict>) =>
    runCheck(name, cluster, fn, heartbeat, opts);

  for (const c of spec.clusters) {
    const k = api[c.name];
    heartbeat({ verifying: c.name });
    results.push(
      await check('cacerts', c.name, async (call) => {
        let s: k8s.V1Secret;
        try {
          s = await call(() => k.core.readNamespacedSecret({ name: 'cacerts', namespace: ISTIO_NAMESPACE }));
        } catch (err) {
          if (!notFound(err)) throw err;
          return fail(
            `${ISTIO_NAMESPACE}/cacerts does not exist (${describeError(err)})`,
            'istiod falls back to a self-signed root that no other cluster trusts: ' +
              're-run `meshflow up` to restore cacerts, then restart istiod',
          );
        }
        const keys = ['ca-cert.pem', 'ca-key.pem', 'root-cert.pem', 'cert-chain.pem'];
        const missing = keys.filter((key) => !s.data?.[key]);
        if (missing.length) {
          return fail(
            `cacerts lacks ${missing.join(', ')}`,
            'the secret was changed by hand: re-run `meshflow up` to restore it',
          );
        }
        roots.set(c.name, Buffer.from(s.data!['root-cert.pem'], 'base64').toString());
        return pass('ca-cert, ca-key, root-cert and cert-chain present');
      }),
    );
    results.push(
      await check('network-label', c.name, async (call) => {
        const ns = await call(() => k.core.readNamespace({ name: ISTIO_NAMESPACE }));
        const label = ns.metadata?.labels?.[NETWORK_LABEL];
        return label === c.network
          ? pass(`${ISTIO_NAMESPACE} is on network ${c.network}`)
          : fail(
              `${ISTIO_NAMESPACE} has ${NETWORK_LABEL}=${label ?? '(none)'}, want ${c.network}`,
              `label the namespace: kubectl label ns ${ISTIO_NAMESPACE} ${NETWORK_LABEL}=${c.network} --overwrite`,
            );
      }),
    );
    if (c.role === 'primary') {
      results.push(
        await check('istiod-available', c.name, async (call) => {
          // The istiod of the revision the default tag names (an upgrade moves it cluster by cluster).
          const name = istiodDeployment(await call(() => tagOf(k.admission)));
          const d = await call(() => k.apps.readNamespacedDeploymentStatus({ name, namespace: ISTIO_NAMESPACE }));
          const ok = d.status?.conditions?.some((x) => x.type === 'Available' && x.status === 'True');
          return ok
            ? pass(`${name} is available`)
            : fail(
                `${name} is not available`,
                `kubectl -n istio-system describe deploy ${name} (image pulls, resources, cacerts)`,
              );
        }),
      );
    }
    if (plan.steps.some((s) => s.kind === 'eastwest-gateway' && s.cluster === c.name)) {
      results.push(
        await check('eastwest-address', c.name, async (call) => {
          if (spec.istio.dataPlane === 'ambient') {
            const gw = await eastWestGateway({ api }, c.name, call);
            if (!gw.address) {
              return fail(
                `the east-west Gateway is not programmed: ${gw.why}`,
                `istiod deploys Gateway ${ISTIO_NAMESPACE}/${AMBIENT_EASTWEST_GATEWAY} and its Service needs a load ` +
                  `balancer address: \`kubectl -n ${ISTIO_NAMESPACE} describe gateway ${AMBIENT_EASTWEST_GATEWAY}\``,
              );
            }
            if (gw.network !== c.network) {
              return fail(
                `the east-west Gateway at ${gw.address} is labelled for network ${gw.network ?? '(none)'}, ` +
                  `the cluster is on ${c.network}`,
                `istiod finds a network's gateway by its ${NETWORK_LABEL} label: re-run \`meshflow up\` to restore it`,
              );
            }
            return pass(`east-west Gateway ${AMBIENT_EASTWEST_GATEWAY} programmed at ${gw.address} (${c.network})`);
          }
          const svc = await call(() =>
            k.core.readNamespacedService({ name: EASTWEST_SERVICE, namespace: ISTIO_NAMESPACE }),
          );
          const address = loadBalancerAddress(svc);
          return address
            ? pass(`east-west gateway at ${address}`)
            : fail(
                'the east-west gateway has no address (load balancer pending)',
                'the cluster needs a load balancer implementation, or set spec.externalIPs on the Service',
              );
        }),
      );
    }
    if (plan.steps.some((s) => s.kind === 'expose-services' && s.cluster === c.name)) {
      results.push(
        await check('cross-network-gateway', c.name, async (call) => {
          const gw = await call(() =>
            k.custom.getNamespacedCustomObject({
              group: 'networking.istio.io',
              version: 'v1',
              namespace: ISTIO_NAMESPACE,
              plural: 'gateways',
              name: 'cross-network-gateway',
            }),
          );
          type Server = { port: { number: number }; tls?: { mode?: string } };
          const server = (gw as { spec?: { servers?: Server[] } }).spec?.servers?.[0];
          return server?.port.number === 15443 && server.tls?.mode === 'AUTO_PASSTHROUGH'
            ? pass('Gateway cross-network-gateway: 15443 AUTO_PASSTHROUGH')
            : fail('Gateway cross-network-gateway is not 15443 AUTO_PASSTHROUGH', 're-run `meshflow up` to restore it');
        }),
      );
    }
  }

  results.push(
    await check('same-root', undefined, async () => {
      if (roots.size !== spec.clusters.length) {
        return fail('not every cluster has a root certificate to compare', 'see the cacerts checks');
      }
      // Group clusters by root: the largest group is the mesh's, the others are the odd ones out.
      const groups = new Map<string, string[]>();
      for (const [cluster, root] of roots) groups.set(root, [...(groups.get(root) ?? []), cluster]);
      if (groups.size === 1) return pass(`all ${roots.size} clusters trust the same root`);
      const [main, ...odd] = [...groups.values()].sort((a, b) => b.length - a.length);
      return fail(
        `${odd.flat().join(', ')} trust${odd.flat().length === 1 ? 's' : ''} a different root from ${main.join(', ')} ` +
          `(${groups.size} roots in all)`,
        'mismatched roots make cross-cluster mTLS fail (CERTIFICATE_VERIFY_FAILED / UNKNOWN_CA): ' +
          'give every cluster cacerts from one root, then restart istiod',
      );
    }),
  );

  for (const [source, target] of linkPairs(spec)) {
    heartbeat({ verifying: `${source}->${target}` });
    results.push(
      await check('remote-secret', target, async (call) => {
        const name = remoteSecretName(source);
        let s: k8s.V1Secret;
        try {
          s = await call(() => api[target].core.readNamespacedSecret({ name, namespace: ISTIO_NAMESPACE }));
        } catch (err) {
          if (!notFound(err)) throw err;
          return fail(
            `${ISTIO_NAMESPACE}/${name} does not exist in ${target}`,
            `${target} does not see ${source}'s services: re-run \`meshflow up\``,
          );
        }
        const labelled = s.metadata?.labels?.['istio/multiCluster'] === 'true';
        if (!labelled || s.metadata?.annotations?.['networking.istio.io/cluster'] !== source) {
          return fail(
            `${name} lacks label istio/multiCluster=true or annotation networking.istio.io/cluster=${source}`,
            'istiod ignores it: re-run `meshflow up`',
          );
        }
        if (!s.data?.[source]) {
          return fail(`${name} has no kubeconfig under key ${source}`, 'istiod cannot read it: re-run `meshflow up`');
        }
        const kc = new SharedTlsKubeConfig();
        kc.loadFromString(Buffer.from(s.data[source], 'base64').toString());
        const reader = clients(kc, opts, agents);
        try {
          await call(() => reader.core.listServiceForAllNamespaces({ limit: 1 }));
          await call(() => reader.core.listPodForAllNamespaces({ limit: 1 }));
          await call(() => reader.discovery.listEndpointSliceForAllNamespaces({ limit: 1 }));
        } catch (err) {
          // Transient errors that outlast the budget are no verdict: the check's caller throws.
          if (classifyError(err) === 'transient') throw err;
          const code = (err as { code?: unknown }).code;
          return fail(
            `${name} cannot read ${source}'s API (${describeError(err)})`,
            code === 401 || code === 403
              ? 'the reader token was rejected or lacks rights: re-link with `meshflow up` (token expired after extend?)'
              : `${source}'s API server address in the secret is not reachable from ${target}: ` +
                  `set clusters[${source}].apiServerAddress`,
          );
        }
        // Reader only: no write, escalate, bind or impersonate, neither cluster-wide nor in any namespace.
        const rights = await readerRights(reader.auth, api[source].core, call, opts, (done, of) =>
          heartbeat({ verifying: `${source}->${target}`, namespacesReviewed: done, of }),
        );
        if (rights.cluster.length || rights.namespaces.size) {
          const namespaces = [...rights.namespaces.keys()].sort();
          const listed = namespaces.slice(0, 5).join(', ') + (namespaces.length > 5 ? ', ...' : '');
          return fail(
            `${name} may ${rightsText(rights, source)}`,
            'the reader ServiceAccount has more than read rights: check the ClusterRoleBindings' +
              (namespaces.length ? ` and the RoleBindings in ${listed}` : '') +
              ` of ${ISTIO_NAMESPACE}/${READER_SERVICE_ACCOUNT} in ${source}`,
          );
        }
        const fallback = rights.fallback.length
          ? ` (${rights.fallback.length} of them asked permission by permission: their rules review was incomplete)`
          : '';
        return pass(
          `${target} reads ${source} (services, pods, endpointslices) and may not create, change, delete, ` +
            `escalate, bind or impersonate, cluster-wide or in any of its ${rights.reviewed} namespaces${fallback}`,
        );
      }),
    );
  }

  return results;
}
