// gc in Kubernetes: discovery, labelled lists, deletes of exactly the object that was found, and
// the Secrets of the Kubernetes trust store.
import * as k8s from '@kubernetes/client-node';
import { SharedTlsKubeConfig } from '../util/kube-config';
import { Kube, MANAGED_BY, MESH_LABEL } from '../adapters/kube';
import { type KubernetesStoreLocation, kubernetesTrustStore } from '../trust-store/from-env';
import { secretName } from '../trust-store/kubernetes';
import { type GcAction, PARALLEL, SELECTOR, codeOf, messageOf } from './types';
import { mapLimit } from '../util/limit';

// ---------------------------------------------------------------------------------------------
// Kubernetes: discovery, labelled lists, deletes of exactly the object that was found.

export interface ApiResource {
  groupVersion: string;
  /** Plural resource name, e.g. "secrets". */
  name: string;
  kind: string;
  namespaced: boolean;
}

export interface KubeItem {
  metadata: {
    name: string;
    namespace?: string;
    uid: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
    finalizers?: string[];
  };
  /** A Secret's entries: only their names are read (to count them), never their values. */
  data?: Record<string, string>;
  spec?: {
    group?: string;
    names?: { plural?: string };
    versions?: Array<{ name: string; served?: boolean }>;
    finalizers?: string[];
  };
}

export interface Found {
  res: ApiResource;
  item: KubeItem;
  mesh: string;
}

export const SECRETS: ApiResource = { groupVersion: 'v1', name: 'secrets', kind: 'Secret', namespaced: true };

export const groupPath = (gv: string) => (gv.includes('/') ? `/apis/${gv}` : `/api/${gv}`);
export const collectionPath = (r: ApiResource) => `${groupPath(r.groupVersion)}/${r.name}`;
export const isNamespace = (r: ApiResource) => r.groupVersion === 'v1' && r.name === 'namespaces';
export const isCrd = (r: ApiResource) =>
  r.groupVersion.startsWith('apiextensions.k8s.io/') && r.name === 'customresourcedefinitions';
export const isWebhook = (r: ApiResource) => r.groupVersion.startsWith('admissionregistration.k8s.io/');
export const ownedBy = (labels: Record<string, string> | undefined, mesh: string) =>
  labels?.[MANAGED_BY] === 'meshflow' && labels?.[MESH_LABEL] === mesh;
export const describeItem = (kind: string, m: KubeItem['metadata']) =>
  `${kind} ${m.namespace ? `${m.namespace}/` : ''}${m.name}`;

export function objectPath(r: ApiResource, m: KubeItem['metadata']): string {
  const ns = r.namespaced ? `/namespaces/${encodeURIComponent(m.namespace ?? '')}` : '';
  return `${groupPath(r.groupVersion)}${ns}/${r.name}/${encodeURIComponent(m.name)}`;
}

export class ClusterApi {
  private constructor(
    readonly label: string,
    private readonly config: k8s.KubeConfig,
  ) {}

  static open(label: string | undefined, kubeconfig: string, context?: string): ClusterApi {
    const kc = new SharedTlsKubeConfig();
    kc.loadFromFile(kubeconfig);
    if (context) {
      if (!kc.getContextObject(context)) throw new Error(`no context "${context}" in ${kubeconfig}`);
      kc.setCurrentContext(context);
    }
    if (!kc.getCurrentCluster()) {
      throw new Error(`${kubeconfig} names no cluster${context ? ` for context ${context}` : ''}`);
    }
    return new ClusterApi(label ?? (kc.getCurrentContext() || kubeconfig), kc);
  }

  get server(): string {
    return this.config.getCurrentCluster()!.server;
  }

  /** One API call; transient answers are retried as in every meshflow call (Kube.requestJson). */
  request<T>(method: string, urlPath: string, body?: unknown): Promise<T> {
    return new Kube(this.config).requestJson<T>(method, urlPath, body);
  }

  /** Every resource type that can be listed and deleted, one version per group (the preferred one). */
  async resources(warn: (line: string) => void): Promise<ApiResource[]> {
    type Group = { preferredVersion?: { groupVersion: string }; versions: Array<{ groupVersion: string }> };
    type ResourceList = { resources: Array<{ name: string; kind: string; namespaced: boolean; verbs?: string[] }> };
    const core = await this.request<{ versions: string[] }>('GET', '/api');
    const groups = await this.request<{ groups: Group[] }>('GET', '/apis');
    const preferred = groups.groups.map((g) => g.preferredVersion?.groupVersion ?? g.versions[0].groupVersion);
    const gvs = [...core.versions.slice(0, 1), ...preferred];
    const lists = await mapLimit(gvs, PARALLEL, async (gv) => {
      try {
        const list = await this.request<ResourceList>('GET', groupPath(gv));
        return list.resources
          .filter((r) => !r.name.includes('/') && r.verbs?.includes('list') && r.verbs.includes('delete'))
          .map((r) => ({ groupVersion: gv, name: r.name, kind: r.kind, namespaced: r.namespaced }));
      } catch (err) {
        warn(`${this.label}: API ${gv} was not searched: ${messageOf(err)}`);
        return [];
      }
    });
    return lists.flat();
  }

  async list(collection: string, labelSelector?: string): Promise<KubeItem[]> {
    const items: KubeItem[] = [];
    let next = '';
    do {
      const q = new URLSearchParams({ limit: '500' });
      if (labelSelector) q.set('labelSelector', labelSelector);
      if (next) q.set('continue', next);
      type Page = { items: KubeItem[] | null; metadata?: { continue?: string } };
      const page = await this.request<Page>('GET', `${collection}?${q}`);
      items.push(...(page.items ?? []));
      next = page.metadata?.continue ?? '';
    } while (next);
    return items;
  }

  /** meshflow's objects in this cluster, each once (a kind served by two groups is listed twice). */
  async scan(warn: (line: string) => void): Promise<Found[]> {
    const resources = await this.resources(warn);
    const seen = new Set<string>();
    const found: Found[] = [];
    await mapLimit(resources, PARALLEL, async (res) => {
      let items: KubeItem[];
      try {
        items = await this.list(collectionPath(res), SELECTOR);
      } catch (err) {
        warn(`${this.label}: ${res.name}.${res.groupVersion} was not searched: ${messageOf(err)}`);
        return;
      }
      for (const item of items) {
        const mesh = item.metadata.labels?.[MESH_LABEL];
        if (!mesh || seen.has(item.metadata.uid)) continue;
        seen.add(item.metadata.uid);
        found.push({ res, item, mesh });
      }
    });
    return found;
  }

  /**
   * Deletes exactly the object that was found: same UID, unchanged since (preconditions). When it
   * changed, it is read again and deleted only if it still carries the mesh's labels.
   */
  async deleteFound(f: Found): Promise<{ action: GcAction; reason?: string }> {
    const p = objectPath(f.res, f.item.metadata);
    const del = (m: KubeItem['metadata']) =>
      this.request('DELETE', p, {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        propagationPolicy: 'Background',
        preconditions: { uid: m.uid, resourceVersion: m.resourceVersion },
      });
    try {
      await del(f.item.metadata);
      return { action: 'deleted' };
    } catch (err) {
      if (codeOf(err) === 404) return { action: 'deleted', reason: 'already gone' };
      if (codeOf(err) !== 409) throw err;
    }
    let now: KubeItem;
    try {
      now = await this.request<KubeItem>('GET', p);
    } catch (err) {
      if (codeOf(err) === 404) return { action: 'deleted', reason: 'already gone' };
      throw err;
    }
    if (now.metadata.uid !== f.item.metadata.uid || !ownedBy(now.metadata.labels, f.mesh)) {
      return { action: 'kept', reason: `changed while gc ran: no longer mesh ${f.mesh}'s` };
    }
    try {
      await del(now.metadata);
    } catch (err) {
      if (codeOf(err) !== 404) throw err;
    }
    return { action: 'deleted' };
  }

  /** The custom resources of a CRD (every namespace) that lack this mesh's labels. */
  async foreignCustomResources(crd: KubeItem, mesh: string): Promise<string[]> {
    const { group, names, versions } = crd.spec ?? {};
    const version = versions?.find((v) => v.served)?.name;
    if (!group || !names?.plural || !version) {
      throw new Error('it serves no version, so its custom resources cannot be checked');
    }
    const kind = `${names.plural}.${group}`;
    return (await this.list(`/apis/${group}/${version}/${names.plural}`))
      .filter((o) => !ownedBy(o.metadata.labels, mesh))
      .map((o) => describeItem(kind, o.metadata));
  }
}

/**
 * The trust store's Secrets: `meshflow-trust-<mesh>` carrying that mesh's labels. Other Secrets of
 * its namespace, labelled or not, are not the store's (the store neither uses nor deletes them).
 */
export async function scanTrustStore(where: KubernetesStoreLocation): Promise<{ api: ClusterApi; found: Found[] }> {
  kubernetesTrustStore(where); // checks the kubeconfig and its context, naming what is wrong and nothing it holds
  const api = ClusterApi.open(undefined, where.kubeconfig, where.context);
  const items = await api.list(`/api/v1/namespaces/${encodeURIComponent(where.namespace)}/secrets`, SELECTOR);
  const found: Found[] = [];
  for (const item of items) {
    const mesh = item.metadata.labels?.[MESH_LABEL];
    if (mesh && item.metadata.name === secretName(mesh)) found.push({ res: SECRETS, item, mesh });
  }
  return { api, found };
}
