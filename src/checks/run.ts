// How a check runs: its requests retried while their errors are transient (5xx, 429, resets,
// timeouts) until they have lasted `retryBudgetMs` without a success, a definite error made a
// failed result, and the API clients every check of one verification shares (keep-alive agents,
// request timeouts, the activity's cancellation).
//
// A check fails only on a definite answer (a 404 for something that must exist, a 403, wrong
// contents). An error that persists past the budget is no verdict about the mesh, so runCheck
// throws ChecksUnavailableError and the activity fails and is retried by Temporal instead of
// reporting the check as failed.
import https from 'node:https';
import * as k8s from '@kubernetes/client-node';
import { type Heartbeat, pause } from '../adapters/kube';
import type { CheckResult } from '../steps/contract';
import { type Call, ChecksUnavailableError, type Verdict } from './result';

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
export type Options = Required<Omit<VerifyOptions, Optional>> & Pick<VerifyOptions, Optional>;

export const DEFAULTS: Options = {
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

export interface Attempts {
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
export async function retrying<T>(a: Attempts, fn: () => Promise<T>): Promise<T> {
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

/** Keep-alive agents of one verification, destroyed when it ends. */
export class Agents {
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

export interface Clients {
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  custom: k8s.CustomObjectsApi;
  auth: k8s.AuthorizationV1Api;
  discovery: k8s.DiscoveryV1Api;
  admission: k8s.AdmissionregistrationV1Api;
}

export function clients(kc: k8s.KubeConfig, opts: Options, agents: Agents): Clients {
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
