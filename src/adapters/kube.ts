// Kubernetes access for activities: server-side apply of manifests with meshflow's ownership
// labels, waits on CRDs, Deployments and load balancers, and deletes that only ever touch
// objects meshflow labelled as its own for this mesh.
import https from 'node:https';
import * as k8s from '@kubernetes/client-node';
import { SharedTlsKubeConfig } from '../util/kube-config';
import * as jsYaml from 'js-yaml';
import type { ObjectRef } from '../steps/contract';
import { NotOursError, PermanentError } from '../util/errors';
import { mapLimit } from '../util/limit';

export type { ObjectRef } from '../steps/contract';

export const FIELD_MANAGER = 'meshflow';
export const MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MESH_LABEL = 'meshflow.dev/mesh';

export type Heartbeat = (detail?: unknown) => void;

/** How an apply reports its work: progress, and the objects it is about to create (before it does). */
export interface ApplyOptions {
  heartbeat?: Heartbeat;
  track?: (refs: ObjectRef[]) => void;
}

/** An object that Kube.deleteOwned left in place, and why. */
export interface Untouched {
  ref: ObjectRef;
  reason: string;
}

/**
 * Rendered manifests (istioctl's, an addon's, an app's) as objects. Machine-written YAML is read
 * with js-yaml: istioctl's control plane is 1.1 MB (its CRDs' schemas), which js-yaml reads in
 * ~50 ms and the `yaml` library, kept for specs for its error positions, in ~400 ms of the
 * worker's main thread per cluster.
 */
export function parseManifests(text: string): k8s.KubernetesObject[] {
  let docs: unknown[];
  try {
    docs = jsYaml.loadAll(text);
  } catch (err) {
    const mark = (err as { mark?: { line: number } }).mark;
    const reason = (err as { reason?: string }).reason ?? (err as Error).message;
    throw new Error(`manifest is not valid YAML${mark ? ` at line ${mark.line + 1}` : ''}: ${reason}`);
  }
  return docs.filter((o): o is k8s.KubernetesObject => {
    const obj = o as k8s.KubernetesObject | null;
    return Boolean(obj && obj.kind && obj.apiVersion);
  });
}

export function refOf(o: k8s.KubernetesObject): ObjectRef {
  return { apiVersion: o.apiVersion!, kind: o.kind!, namespace: o.metadata?.namespace, name: o.metadata!.name! };
}

/** A Service's address for other networks: its first load balancer IP or hostname, else its first external IP. */
export function loadBalancerAddress(svc: k8s.V1Service): string | undefined {
  const ingress = svc.status?.loadBalancer?.ingress?.[0];
  return ingress?.ip ?? ingress?.hostname ?? svc.spec?.externalIPs?.[0];
}

/** Whether an object carries this mesh's ownership labels. */
export function ownedBy(o: k8s.KubernetesObject, mesh: string): boolean {
  const labels = o.metadata?.labels ?? {};
  return labels[MANAGED_BY] === 'meshflow' && labels[MESH_LABEL] === mesh;
}

export const describeRef = (r: ObjectRef) => `${r.kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name}`;

/**
 * The wait before poll number `attempt` (from 0) of a condition that usually holds within a second
 * or two (a Deployment available, an address assigned): 100 ms, then half as long again each time,
 * up to 1 s. A local cluster answers in a few polls; a cloud's minutes-long waits poll once a second.
 */
export function pollDelay(attempt: number): number {
  return Math.min(100 * 1.5 ** attempt, 1000);
}

/** Waits `ms`, or rejects at once when `signal` aborts. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const REQUEST_TIMEOUT_MS = 30_000;

/** An API server that does not answer a request at all: a transient error (ETIMEDOUT), retried like a reset. */
const noAnswer = (method: string, urlPath: string): Error =>
  Object.assign(new Error(`${method} ${urlPath}: no answer within ${REQUEST_TIMEOUT_MS / 1000}s`), {
    code: 'ETIMEDOUT',
  });

/** Whether a failed API call is worth retrying: throttled, a server error, or a lost connection. */
export function isTransient(err: unknown): boolean {
  const e = err as { code?: number | string; name?: string };
  if (typeof e.code === 'number') return e.code === 429 || e.code >= 500;
  return (
    ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ECONNABORTED'].includes(String(e.code)) ||
    /socket hang up/i.test(String((err as Error)?.message))
  );
}

/** Runs `fn` over `items`, at most `limit` at a time, keeping order in the results. */
/** How long a wait for Deployments lasts by default: well inside the 10 minutes of the shortest step that waits. */
export const DEPLOYMENT_WAIT_MS = 4 * 60_000;

/** Deployments not available in time; the message says why. Retryable: a later attempt may see them up. */
export class DeploymentUnavailableError extends Error {
  override name = 'DeploymentUnavailable';
}

export interface RetryOptions {
  /** No retry starts after this time (ms since the epoch). */
  until?: number;
  /** Told of each transient answer that is retried. */
  onTransient?: (err: unknown) => void;
}

/** The transient answers a wait rode out, for its message: a wait under API faults says so. */
class ApiAnswers {
  private requests = 0;
  private errors = 0;
  private last = '';

  transient(err: unknown): void {
    this.requests++;
    this.errors++;
    this.last = shortError(err);
  }

  /** The call's answer, or undefined (counted) when its transient errors outlasted the retries. */
  async read<T>(call: () => Promise<T>): Promise<T | undefined> {
    try {
      const answer = await call();
      this.requests++;
      return answer;
    } catch (err) {
      if (!isTransient(err)) throw err;
      this.transient(err);
      return undefined;
    }
  }

  summary(): string {
    if (!this.errors) return '';
    return `; the API server answered ${this.errors} of ${this.requests} requests with errors (last: ${this.last})`;
  }
}

/** An API error in one line: the status code and the Status message, or the connection error's code. */
export function shortError(err: unknown): string {
  const e = err as { code?: number | string; body?: unknown; message?: string };
  if (typeof e.code === 'number') {
    let message = typeof e.body === 'string' ? e.body : '';
    try {
      message = (JSON.parse(message) as { message?: string }).message ?? message;
    } catch {
      // not a Status object
    }
    return `${e.code}${message ? ` ${message}` : ''}`.slice(0, 200);
  }
  const first = String(e.message ?? err).split('\n')[0];
  return (e.code && !first.includes(String(e.code)) ? `${e.code} ${first}` : first).slice(0, 200);
}

export function deploymentAvailable(d: k8s.V1Deployment): boolean {
  const want = d.spec?.replicas ?? 1;
  return d.status?.observedGeneration === d.metadata?.generation && (d.status?.availableReplicas ?? 0) >= want;
}

/** Conditions that are not as they should be: any but True, and ReplicaFailure (a failure when True). */
function notTrue(
  conditions: Array<{ type: string; status: string; reason?: string; message?: string }> | undefined,
  failuresOnly = false,
): string[] {
  return (conditions ?? [])
    .filter((c) => (c.type === 'ReplicaFailure' ? c.status === 'True' : !failuresOnly && c.status !== 'True'))
    .map(
      (c) =>
        `${c.type}=${c.status}${c.reason || c.message ? ` (${[c.reason, c.message].filter(Boolean).join(': ')})` : ''}`,
    );
}

function revision(rs: k8s.V1ReplicaSet): number {
  return Number(rs.metadata?.annotations?.['deployment.kubernetes.io/revision'] ?? 0);
}

/** A pod's phase and, when it is not ready, why: unscheduled, a container waiting or ended. */
function podState(p: k8s.V1Pod): string {
  const out = [`pod ${p.metadata?.name}: ${p.status?.phase ?? 'no phase'}`];
  if (!p.spec?.nodeName && !p.status?.conditions?.some((c) => c.type === 'PodScheduled')) out.push('not scheduled');
  out.push(...notTrue(p.status?.conditions));
  for (const c of [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])]) {
    const waiting = c.state?.waiting;
    const ended = c.state?.terminated;
    if (waiting) out.push(`${c.name} waiting (${[waiting.reason, waiting.message].filter(Boolean).join(': ')})`);
    else if (ended && ended.exitCode !== 0) out.push(`${c.name} exited ${ended.exitCode} (${ended.reason ?? ''})`);
  }
  return out.join(', ');
}

export class Kube {
  readonly objects: k8s.KubernetesObjectApi;
  readonly core: k8s.CoreV1Api;
  readonly apps: k8s.AppsV1Api;
  /** Raw requests this client has sent (discovery and retries included; not the typed clients'), for benches. */
  sent = 0;

  /**
   * `signal` aborts every request and wait of this client (an activity's cancellation): a cancel
   * reaches a step within one poll interval.
   */
  constructor(
    readonly config: k8s.KubeConfig,
    readonly signal?: AbortSignal,
  ) {
    this.objects = k8s.KubernetesObjectApi.makeApiClient(config);
    this.core = config.makeApiClient(k8s.CoreV1Api);
    this.apps = config.makeApiClient(k8s.AppsV1Api);
  }

  static fromFile(file: string, context?: string, signal?: AbortSignal): Kube {
    const kc = new SharedTlsKubeConfig();
    kc.loadFromFile(file);
    if (context) kc.setCurrentContext(context);
    return new Kube(kc, signal);
  }

  /**
   * Server-side applies `objects` labelled as this mesh's; CRDs first, then the rest once they are
   * established. Nothing is taken over: when any of the objects already exists without this mesh's
   * labels (an Istio installed by someone else, a user's object of the same name), nothing is
   * applied and the step fails naming them. Each object is tracked before it is written.
   */
  async apply(mesh: string, objects: k8s.KubernetesObject[], opts: ApplyOptions = {}): Promise<ObjectRef[]> {
    const heartbeat = opts.heartbeat ?? (() => undefined);
    const labelled = objects.map((o) => ({
      ...o,
      metadata: {
        ...o.metadata,
        labels: { ...(o.metadata?.labels ?? {}), [MANAGED_BY]: 'meshflow', [MESH_LABEL]: mesh },
      },
    }));
    await this.refuseForeign(mesh, labelled);
    opts.track?.(labelled.map(refOf));
    const crds = labelled.filter((o) => o.kind === 'CustomResourceDefinition');
    const namespaces = labelled.filter((o) => o.kind === 'Namespace');
    const rest = labelled.filter((o) => o.kind !== 'CustomResourceDefinition' && o.kind !== 'Namespace');
    for (const batch of [crds, namespaces]) await Promise.all(batch.map((o) => this.ssa(o)));
    // The API server establishes CRDs independently: wait for them together, not one after another.
    await Promise.all(crds.map((crd) => this.waitEstablished(crd.metadata!.name!, heartbeat)));
    // Meanwhile their watch caches fill, so that a controller started next (istiod) finds them served.
    const watchable = Promise.all(
      crds.map((crd) => this.waitWatchable(crd as unknown as k8s.V1CustomResourceDefinition)),
    );
    // Independent objects go up in parallel, a few at a time.
    for (let i = 0; i < rest.length; i += 16) {
      await Promise.all(rest.slice(i, i + 16).map((o) => this.ssaWithRetry(o)));
      heartbeat({ applied: Math.min(i + 16, rest.length), of: rest.length });
    }
    await watchable;
    return labelled.map(refOf);
  }

  /** Fails, naming them, when objects of these names exist and are not this mesh's. */
  private async refuseForeign(mesh: string, objects: k8s.KubernetesObject[]): Promise<void> {
    // An object of a kind the server does not serve (its CRD is in this batch) cannot exist yet:
    // one discovery read per API group says which kinds those are, instead of one miss per object.
    const groups = [...new Set(objects.map((o) => o.apiVersion!))];
    const served = new Set<string>();
    await Promise.all(
      groups.map(async (apiVersion) => {
        for (const kind of await this.kindsOf(apiVersion)) served.add(`${apiVersion}/${kind}`);
      }),
    );
    const found = await mapLimit(objects, 16, async (o) => {
      if (!served.has(`${o.apiVersion}/${o.kind}`)) return undefined;
      const existing = await this.read(refOf(o));
      return existing && !ownedBy(existing, mesh) ? refOf(o) : undefined;
    });
    const foreign = found.filter((r): r is ObjectRef => r !== undefined);
    if (!foreign.length) return;
    const names =
      foreign.slice(0, 5).map(describeRef).join(', ') + (foreign.length > 5 ? ` and ${foreign.length - 5} more` : '');
    throw new NotOursError(
      `${foreign.length} object(s) already exist in cluster ${this.clusterName()} and are not mesh ${mesh}'s ` +
        `(no ${MANAGED_BY}=meshflow, ${MESH_LABEL}=${mesh} labels): ${names}. meshflow does not take over or delete ` +
        'what it did not create: remove them, or use a cluster without them (an Istio installed by other means ' +
        'cannot be joined this way)',
    );
  }

  private clusterName(): string {
    return this.config.getCurrentContext() || this.config.getCurrentCluster()?.server || 'cluster';
  }

  /** The object, or undefined when it (or its kind) does not exist. Raw JSON, through discovery. */
  async read(ref: ObjectRef): Promise<k8s.KubernetesObject | undefined> {
    try {
      const base = await this.resourcePath(ref.apiVersion, ref.kind, ref.namespace);
      return JSON.parse(await this.request('GET', `${base}/${encodeURIComponent(ref.name)}`)) as k8s.KubernetesObject;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  /**
   * The objects of a kind in one namespace (or cluster-wide for cluster-scoped kinds) matching a
   * label selector, raw JSON; an empty list when the server does not serve the kind.
   */
  async list(
    apiVersion: string,
    kind: string,
    namespace?: string,
    labelSelector?: string,
  ): Promise<k8s.KubernetesObject[]> {
    let base: string;
    try {
      base = await this.resourcePath(apiVersion, kind, namespace);
    } catch (err) {
      if ((err as { code?: number }).code === 404) return [];
      throw err;
    }
    const query = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : '';
    const list = JSON.parse(await this.request('GET', `${base}${query}`)) as { items: k8s.KubernetesObject[] };
    return list.items.map((o) => ({ apiVersion, kind, ...o }));
  }

  /**
   * Server-side apply as raw JSON. The typed client re-serializes objects through its models,
   * which drops schema keys such as x-kubernetes-int-or-string from CRDs; apply must send the
   * manifest exactly as rendered.
   */
  private async ssa(o: k8s.KubernetesObject): Promise<void> {
    const base = await this.resourcePath(o.apiVersion!, o.kind!, o.metadata?.namespace);
    // force: meshflow's field manager takes the fields of objects it owns (checked before) back from
    // hand edits; it never forces an object that is not the mesh's.
    const query = `fieldManager=${FIELD_MANAGER}&force=true`;
    try {
      await this.request(
        'PATCH',
        `${base}/${encodeURIComponent(o.metadata!.name!)}?${query}`,
        JSON.stringify(o),
        'application/apply-patch+yaml',
      );
    } catch (err) {
      // A definite "no" (invalid object, forbidden): no retry changes it.
      if ([400, 403, 422].includes((err as { code?: number }).code ?? 0)) {
        throw new PermanentError(
          `${describeRef(refOf(o))} was refused by cluster ${this.clusterName()}: ${(err as Error).message}`,
        );
      }
      throw err;
    }
  }

  private readonly resources = new Map<string, { name: string; namespaced: boolean }>();

  /** Whether a kind lives in namespaces, from API discovery; undefined when the server does not know it (yet). */
  async namespaced(apiVersion: string, kind: string): Promise<boolean | undefined> {
    try {
      await this.resourcePath(apiVersion, kind);
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
    return this.resources.get(`${apiVersion}/${kind}`)!.namespaced;
  }

  /** Discovery reads under way, by group path: concurrent lookups in one group share one request. */
  private readonly discovering = new Map<string, Promise<void>>();

  /** Reads a group's resources into the cache; a group the server does not serve (404) adds nothing. */
  private async discover(apiVersion: string): Promise<void> {
    const groupPath = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    let pending = this.discovering.get(groupPath);
    if (!pending) {
      pending = (async () => {
        try {
          const list = JSON.parse(await this.request('GET', groupPath)) as {
            resources: Array<{ name: string; kind: string; namespaced: boolean }>;
          };
          for (const r of list.resources) if (!r.name.includes('/')) this.resources.set(`${apiVersion}/${r.kind}`, r);
        } catch (err) {
          if ((err as { code?: number }).code !== 404) throw err;
        } finally {
          this.discovering.delete(groupPath);
        }
      })();
      this.discovering.set(groupPath, pending);
    }
    return pending;
  }

  /** The kinds the server serves in a group version, read afresh. */
  private async kindsOf(apiVersion: string): Promise<string[]> {
    await this.discover(apiVersion);
    return [...this.resources.keys()]
      .filter((k) => k.startsWith(`${apiVersion}/`) && k.lastIndexOf('/') === apiVersion.length)
      .map((k) => k.slice(apiVersion.length + 1));
  }

  /** The collection path of a kind, from API discovery (cached; a kind not found yet is looked up again). */
  private async resourcePath(apiVersion: string, kind: string, namespace?: string): Promise<string> {
    const groupPath = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const key = `${apiVersion}/${kind}`;
    if (!this.resources.has(key)) await this.discover(apiVersion);
    const r = this.resources.get(key);
    if (!r) throw Object.assign(new Error(`no matches for kind ${kind} in ${apiVersion}`), { code: 404 });
    return r.namespaced ? `${groupPath}/namespaces/${namespace ?? 'default'}/${r.name}` : `${groupPath}/${r.name}`;
  }

  /**
   * Waits (up to 10 s, then goes on) until a just-established CRD's resources can be watched. The
   * API server refuses watches with 429 until the resource's watch cache has its first list, and
   * client-go then backs off for a second: istiod, started right after the install, spent a second
   * idle on most of its CRD informers. Any answer but 429 or 404 ends the wait: it is not ours.
   */
  private async waitWatchable(crd: k8s.V1CustomResourceDefinition): Promise<void> {
    const version = crd.spec.versions.find((v) => v.served)?.name;
    if (!version) return;
    const url =
      `/apis/${crd.spec.group}/${version}/${crd.spec.names.plural}` + '?watch=1&resourceVersion=0&timeoutSeconds=1';
    const deadline = Date.now() + 10_000;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const status = await this.watchStatus(url).catch(() => 0);
      if (status !== 429 && status !== 404 && status !== 0) return;
      await pause(Math.min(pollDelay(attempt), 250), this.signal);
    }
  }

  /** The status a watch request is answered with (the watch itself is closed at once). */
  private async watchStatus(urlPath: string): Promise<number> {
    const { server, opts } = await this.requestOptions('GET');
    return new Promise((resolve, reject) => {
      const req = https.request(new URL(urlPath, server), opts, (res) => {
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on('timeout', () => req.destroy(noAnswer('GET', urlPath)));
      req.on('error', reject);
      req.end();
    });
  }

  /** The options of one raw request, with this cluster's credentials; counted as sent. */
  private async requestOptions(
    method: string,
    headers: https.RequestOptions['headers'] = {},
  ): Promise<{ server: string; opts: https.RequestOptions }> {
    this.signal?.throwIfAborted();
    this.sent++;
    const opts: https.RequestOptions = { method, headers, signal: this.signal, timeout: REQUEST_TIMEOUT_MS };
    await this.config.applyToHTTPSOptions(opts);
    return { server: this.config.getCurrentCluster()!.server, opts };
  }

  /**
   * One API request, retried while the answer is transient (429, 5xx, a reset or refused
   * connection: an API server starting or under load, or an answer lost on the way), for up to
   * about 30 s. Every request meshflow makes is idempotent (GET, server-side apply, DELETE, a new
   * token), so a retry is safe.
   */
  private async request(
    method: string,
    urlPath: string,
    body?: string,
    contentType?: string,
    retry: RetryOptions = {},
  ): Promise<string> {
    return this.retrying(() => this.requestOnce(method, urlPath, body, contentType), retry);
  }

  /** A raw API call with a JSON body and a JSON answer, retried while transient like every call (or as told). */
  async requestJson<T>(method: string, urlPath: string, body?: unknown, retry: RetryOptions = {}): Promise<T> {
    const json = body === undefined ? undefined : JSON.stringify(body);
    return JSON.parse(await this.request(method, urlPath, json, json && 'application/json', retry)) as T;
  }

  /**
   * Runs a call (raw or through the typed clients) again while its answer is transient, up to 12
   * times; a wait passes its deadline as `until` (no retry starts after it) and counts the
   * transient answers it rode out with `onTransient`.
   */
  async retrying<T>(call: () => Promise<T>, opts: RetryOptions = {}): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (!isTransient(err) || attempt >= 12 || this.signal?.aborted) throw err;
        if (opts.until !== undefined && Date.now() > opts.until) throw err;
        opts.onTransient?.(err);
        await pause(Math.min(250 * 2 ** (attempt - 1), 4000), this.signal);
      }
    }
  }

  private async requestOnce(method: string, urlPath: string, body?: string, contentType?: string): Promise<string> {
    const { server, opts } = await this.requestOptions(method, {
      Accept: 'application/json',
      ...(contentType ? { 'Content-Type': contentType } : {}),
      // Said outright: Node sends a DELETE's body without a length, which on a kept-alive
      // connection the API server reads as the start of the next request (400 Bad Request).
      ...(body !== undefined ? { 'Content-Length': Buffer.byteLength(body) } : {}),
    });
    return new Promise((resolve, reject) => {
      const req = https.request(new URL(urlPath, server), opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          if ((res.statusCode ?? 500) < 300) return resolve(text);
          let message = text;
          try {
            message = (JSON.parse(text) as { message?: string }).message ?? text;
          } catch {
            // not a Status object
          }
          reject(
            Object.assign(new Error(`${method} ${urlPath}: ${res.statusCode} ${message}`), { code: res.statusCode }),
          );
        });
      });
      // An API server that does not answer at all: a transient error, retried like a reset.
      req.on('timeout', () => req.destroy(noAnswer(method, urlPath)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Discovery may lag a just-established CRD for a moment; a custom resource is retried briefly. */
  private async ssaWithRetry(o: k8s.KubernetesObject): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.ssa(o);
      } catch (err) {
        const notFound =
          (err as { code?: number }).code === 404 ||
          /not found|no matches for kind/i.test(String((err as Error).message));
        if (!notFound || attempt >= 20) throw err;
        await pause(250, this.signal);
      }
    }
  }

  async waitEstablished(crd: string, heartbeat: Heartbeat, timeoutMs = 60_000): Promise<void> {
    const ext = this.config.makeApiClient(k8s.ApiextensionsV1Api);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const c = await this.retrying(() => ext.readCustomResourceDefinition({ name: crd }));
      if (c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True')) return;
      if (Date.now() > deadline) throw new Error(`CRD ${crd} was not established within ${timeoutMs / 1000}s`);
      heartbeat({ waitingFor: crd });
      await pause(100, this.signal);
    }
  }

  /**
   * Waits until each Deployment has as many available replicas as it wants. Past the deadline
   * (shorter than any step that waits, so it fires first) it fails as DeploymentUnavailable,
   * saying why: the Deployment's conditions, its ReplicaSet's and its pods' as the cluster
   * shows them, and how many of the reads meanwhile the API server answered with errors.
   */
  async waitDeploymentsAvailable(
    namespace: string,
    names: string[],
    heartbeat: Heartbeat,
    timeoutMs = DEPLOYMENT_WAIT_MS,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const api = new ApiAnswers();
    for (const name of names) {
      // The last answer read: what the message describes when the reads at the deadline fail.
      let last: k8s.V1Deployment | undefined;
      for (let attempt = 0; ; attempt++) {
        const d = await api.read(() =>
          this.retrying(() => this.apps.readNamespacedDeploymentStatus({ name, namespace }), {
            until: deadline,
            onTransient: (err) => api.transient(err),
          }),
        );
        if (d && deploymentAvailable(d)) break;
        last = d ?? last;
        if (Date.now() > deadline) {
          const why = last ? await this.whyUnavailable(last, api) : 'the API server never answered a read of it';
          throw new DeploymentUnavailableError(
            `deployment ${namespace}/${name} not available after ${Math.round(timeoutMs / 1000)}s: ${why}` +
              api.summary(),
          );
        }
        heartbeat({ waitingFor: `${namespace}/${name}` });
        await pause(pollDelay(attempt), this.signal);
      }
    }
  }

  /** What keeps a Deployment from being available, from its status, its newest ReplicaSet and that one's pods. */
  private async whyUnavailable(d: k8s.V1Deployment, api: ApiAnswers): Promise<string> {
    const want = d.spec?.replicas ?? 1;
    const s = d.status ?? {};
    const parts = [`${s.availableReplicas ?? 0}/${want} replicas available`];
    if (s.observedGeneration === undefined)
      parts.push(
        'no controller has acted on it (status.observedGeneration unset: is kube-controller-manager running?)',
      );
    else if (s.observedGeneration !== d.metadata?.generation)
      parts.push(`its controller has seen generation ${s.observedGeneration} of ${d.metadata?.generation}`);
    parts.push(...notTrue(s.conditions));
    const namespace = d.metadata!.namespace!;
    const owned = (o: k8s.V1ObjectMeta | undefined, uid?: string) =>
      Boolean(uid && o?.ownerReferences?.some((r) => r.uid === uid));
    const sets = await api.read(() =>
      this.retrying(() => this.apps.listNamespacedReplicaSet({ namespace }), { onTransient: (e) => api.transient(e) }),
    );
    if (!sets) return parts.join('; ');
    const newest = sets.items
      .filter((rs) => owned(rs.metadata, d.metadata?.uid))
      .sort((a, b) => revision(b) - revision(a))[0];
    if (!newest) {
      parts.push('it has no ReplicaSet');
      return parts.join('; ');
    }
    const rs = newest.status;
    parts.push(
      `ReplicaSet ${newest.metadata!.name}: ${rs?.replicas ?? 0} pod(s), ${rs?.readyReplicas ?? 0} ready` +
        notTrue(rs?.conditions, true)
          .map((c) => `, ${c}`)
          .join(''),
    );
    const pods = await api.read(() =>
      this.retrying(() => this.core.listNamespacedPod({ namespace }), { onTransient: (e) => api.transient(e) }),
    );
    const mine = pods?.items.filter((p) => owned(p.metadata, newest.metadata?.uid)) ?? [];
    for (const p of mine.slice(0, 3)) parts.push(podState(p));
    if (mine.length > 3) parts.push(`and ${mine.length - 3} more pod(s)`);
    return parts.join('; ');
  }

  /** The first load balancer address (IP or hostname) of a Service, waiting for one to appear. */
  async waitLoadBalancer(
    namespace: string,
    name: string,
    heartbeat: Heartbeat,
    timeoutMs: number,
  ): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 0; ; attempt++) {
      const address = loadBalancerAddress(
        await this.retrying(() => this.core.readNamespacedService({ name, namespace })),
      );
      if (address) return address;
      if (Date.now() > deadline) return undefined;
      heartbeat({ waitingFor: `load balancer ${namespace}/${name}` });
      await pause(pollDelay(attempt), this.signal);
    }
  }

  /**
   * Deletes the objects that carry this mesh's ownership labels, newest first, reporting each
   * one as it goes. Objects that are gone are skipped; objects meshflow does not own, and CRDs that
   * still hold custom resources not created by this mesh (deleting the CRD would delete them), are
   * left in place and returned with the reason.
   */
  async deleteOwned(mesh: string, refs: ObjectRef[], heartbeat: Heartbeat = () => undefined): Promise<Untouched[]> {
    const untouched: Untouched[] = [];
    for (const [i, ref] of [...refs].reverse().entries()) {
      heartbeat({ deleting: describeRef(ref), done: i, of: refs.length });
      const obj = await this.read(ref);
      if (!obj) continue;
      if (!ownedBy(obj, mesh)) {
        untouched.push({ ref, reason: `not labelled ${MANAGED_BY}=meshflow, ${MESH_LABEL}=${mesh}` });
        continue;
      }
      if (ref.kind === 'CustomResourceDefinition') {
        const others = await this.foreignCustomResources(obj as k8s.V1CustomResourceDefinition, mesh);
        if (others.length) {
          untouched.push({
            ref,
            reason: `still holds ${others.length} resource(s) not created by mesh ${mesh}, e.g. ${others.slice(0, 3).join(', ')}`,
          });
          continue;
        }
      }
      try {
        const base = await this.resourcePath(ref.apiVersion, ref.kind, ref.namespace);
        await this.request('DELETE', `${base}/${encodeURIComponent(ref.name)}?propagationPolicy=Background`);
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
      }
    }
    return untouched;
  }

  /** The custom resources of a CRD (served version, every namespace) that are not this mesh's. */
  private async foreignCustomResources(crd: k8s.V1CustomResourceDefinition, mesh: string): Promise<string[]> {
    const version = crd.spec.versions.find((v) => v.served)?.name;
    if (!version) return [];
    let list: { items: k8s.KubernetesObject[] };
    try {
      list = JSON.parse(
        await this.request('GET', `/apis/${crd.spec.group}/${version}/${crd.spec.names.plural}`),
      ) as typeof list;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return [];
      throw err;
    }
    return list.items
      .filter((o) => !ownedBy(o, mesh))
      .map((o) => `${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`);
  }
}
