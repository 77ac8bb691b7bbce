// Kubernetes access for activities: server-side apply of manifests with meshflow's ownership
// labels, waits on CRDs, Deployments and load balancers, and deletes that only ever touch
// objects meshflow labelled as its own for this mesh.
import https from 'node:https';
import * as k8s from '@kubernetes/client-node';
import YAML from 'yaml';

export const FIELD_MANAGER = 'meshflow';
export const MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MESH_LABEL = 'meshflow.dev/mesh';

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

export type Heartbeat = (detail?: unknown) => void;

export function parseManifests(yaml: string): k8s.KubernetesObject[] {
  const docs = YAML.parseAllDocuments(yaml);
  const broken = docs.findIndex((d) => d.errors.length > 0);
  if (broken >= 0) throw new Error(`manifest document ${broken + 1} is not valid YAML: ${docs[broken].errors[0].message.split('\n')[0]}`);
  return docs
    .map((d) => d.toJS() as k8s.KubernetesObject | null)
    .filter((o): o is k8s.KubernetesObject => Boolean(o && o.kind && o.apiVersion));
}

export function refOf(o: k8s.KubernetesObject): ObjectRef {
  return { apiVersion: o.apiVersion!, kind: o.kind!, namespace: o.metadata?.namespace, name: o.metadata!.name! };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Kube {
  readonly objects: k8s.KubernetesObjectApi;
  readonly core: k8s.CoreV1Api;
  readonly apps: k8s.AppsV1Api;

  constructor(readonly config: k8s.KubeConfig) {
    this.objects = k8s.KubernetesObjectApi.makeApiClient(config);
    this.core = config.makeApiClient(k8s.CoreV1Api);
    this.apps = config.makeApiClient(k8s.AppsV1Api);
  }

  static fromFile(file: string, context?: string): Kube {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(file);
    if (context) kc.setCurrentContext(context);
    return new Kube(kc);
  }

  /** Server-side applies `objects` labelled as this mesh's; CRDs first, then the rest once they are established. */
  async apply(mesh: string, objects: k8s.KubernetesObject[], heartbeat: Heartbeat = () => undefined): Promise<ObjectRef[]> {
    const labelled = objects.map((o) => ({
      ...o,
      metadata: { ...o.metadata, labels: { ...(o.metadata?.labels ?? {}), [MANAGED_BY]: 'meshflow', [MESH_LABEL]: mesh } },
    }));
    const crds = labelled.filter((o) => o.kind === 'CustomResourceDefinition');
    const namespaces = labelled.filter((o) => o.kind === 'Namespace');
    const rest = labelled.filter((o) => o.kind !== 'CustomResourceDefinition' && o.kind !== 'Namespace');
    for (const batch of [crds, namespaces]) await Promise.all(batch.map((o) => this.ssa(o)));
    for (const crd of crds) await this.waitEstablished(crd.metadata!.name!, heartbeat);
    // Independent objects go up in parallel, a few at a time.
    for (let i = 0; i < rest.length; i += 16) {
      await Promise.all(rest.slice(i, i + 16).map((o) => this.ssaWithRetry(o)));
      heartbeat({ applied: Math.min(i + 16, rest.length), of: rest.length });
    }
    return labelled.map(refOf);
  }

  /**
   * Server-side apply as raw JSON. The typed client re-serializes objects through its models,
   * which drops schema keys such as x-kubernetes-int-or-string from CRDs; apply must send the
   * manifest exactly as rendered.
   */
  private async ssa(o: k8s.KubernetesObject): Promise<void> {
    const base = await this.resourcePath(o.apiVersion!, o.kind!, o.metadata?.namespace);
    const query = `fieldManager=${FIELD_MANAGER}&force=true`;
    await this.request('PATCH', `${base}/${encodeURIComponent(o.metadata!.name!)}?${query}`, JSON.stringify(o), 'application/apply-patch+yaml');
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

  /** The collection path of a kind, from API discovery (cached). */
  private async resourcePath(apiVersion: string, kind: string, namespace?: string): Promise<string> {
    const groupPath = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const key = `${apiVersion}/${kind}`;
    if (!this.resources.has(key)) {
      const list = JSON.parse(await this.request('GET', groupPath)) as { resources: Array<{ name: string; kind: string; namespaced: boolean }> };
      for (const r of list.resources) if (!r.name.includes('/')) this.resources.set(`${apiVersion}/${r.kind}`, r);
    }
    const r = this.resources.get(key);
    if (!r) throw Object.assign(new Error(`no matches for kind ${kind} in ${apiVersion}`), { code: 404 });
    return r.namespaced ? `${groupPath}/namespaces/${namespace ?? 'default'}/${r.name}` : `${groupPath}/${r.name}`;
  }

  private async request(method: string, urlPath: string, body?: string, contentType?: string): Promise<string> {
    const server = this.config.getCurrentCluster()!.server;
    const opts: https.RequestOptions = { method, headers: contentType ? { 'Content-Type': contentType } : {} };
    await this.config.applyToHTTPSOptions(opts);
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
          reject(Object.assign(new Error(`${method} ${urlPath}: ${res.statusCode} ${message}`), { code: res.statusCode }));
        });
      });
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
        const notFound = (err as { code?: number }).code === 404 || /not found|no matches for kind/i.test(String((err as Error).message));
        if (!notFound || attempt >= 20) throw err;
        await sleep(250);
      }
    }
  }

  async waitEstablished(crd: string, heartbeat: Heartbeat, timeoutMs = 60_000): Promise<void> {
    const ext = this.config.makeApiClient(k8s.ApiextensionsV1Api);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const c = await ext.readCustomResourceDefinition({ name: crd });
      if (c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True')) return;
      if (Date.now() > deadline) throw new Error(`CRD ${crd} was not established within ${timeoutMs / 1000}s`);
      heartbeat({ waitingFor: crd });
      await sleep(200);
    }
  }

  async waitDeploymentsAvailable(namespace: string, names: string[], heartbeat: Heartbeat, timeoutMs = 10 * 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const name of names) {
      for (;;) {
        const d = await this.apps.readNamespacedDeploymentStatus({ name, namespace });
        const want = d.spec?.replicas ?? 1;
        if (d.status?.observedGeneration === d.metadata?.generation && (d.status?.availableReplicas ?? 0) >= want) break;
        if (Date.now() > deadline) throw new Error(`deployment ${namespace}/${name} not available after ${Math.round(timeoutMs / 1000)}s (${d.status?.availableReplicas ?? 0}/${want} replicas)`);
        heartbeat({ waitingFor: `${namespace}/${name}` });
        await sleep(500);
      }
    }
  }

  /** The first load balancer address (IP or hostname) of a Service, waiting for one to appear. */
  async waitLoadBalancer(namespace: string, name: string, heartbeat: Heartbeat, timeoutMs: number): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const svc = await this.core.readNamespacedService({ name, namespace });
      const ingress = svc.status?.loadBalancer?.ingress?.[0];
      const address = ingress?.ip ?? ingress?.hostname ?? svc.spec?.externalIPs?.[0];
      if (address) return address;
      if (Date.now() > deadline) return undefined;
      heartbeat({ waitingFor: `load balancer ${namespace}/${name}` });
      await sleep(500);
    }
  }

  async read(ref: ObjectRef): Promise<k8s.KubernetesObject | undefined> {
    try {
      return await this.objects.read({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  /**
   * Deletes the objects that carry this mesh's ownership labels, newest first; objects that are
   * gone or that meshflow does not own are left alone. Returns the refs it left because they were
   * not ours.
   */
  async deleteOwned(mesh: string, refs: ObjectRef[]): Promise<ObjectRef[]> {
    const notOurs: ObjectRef[] = [];
    for (const ref of [...refs].reverse()) {
      let obj: k8s.KubernetesObject | undefined;
      try {
        obj = await this.read(ref);
      } catch (err) {
        // The kind itself is gone (its CRD was deleted first): so is the object.
        if (/no matches for kind|not found/i.test(String((err as Error).message))) continue;
        throw err;
      }
      if (!obj) continue;
      const labels = obj.metadata?.labels ?? {};
      if (labels[MANAGED_BY] !== 'meshflow' || labels[MESH_LABEL] !== mesh) {
        notOurs.push(ref);
        continue;
      }
      try {
        await this.objects.delete({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } }, undefined, undefined, undefined, undefined, 'Background');
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
      }
    }
    return notOurs;
  }
}
