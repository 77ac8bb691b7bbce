// Trust entries as Kubernetes Secrets in a namespace of a management cluster, the way Cluster API
// keeps its CAs: any worker that reaches the cluster reads them, so a mesh's trust steps do not
// depend on one host's disk. One Opaque Secret per mesh, `meshflow-trust-<mesh>`, labelled with the
// mesh's ownership labels and annotated as the trust store's; an entry `east/ca-key.pem` is the data
// key `east_ca-key.pem`. Writes are compare-and-swap on the Secret's resourceVersion, so two
// writers of the same entries end with one value.
import type * as k8s from '@kubernetes/client-node';
import { Kube, MANAGED_BY, MESH_LABEL, ownedBy } from '../adapters/kube';
import type { Resource } from '../steps/contract';
import { NotOursError, PermanentError } from '../util/errors';
import { type TrustStore, checkEntryNames } from './store';

export const OWNER_ANNOTATION = 'meshflow.dev/owner';
export const OWNER = 'meshflow trust store';

/** A conflict-free run of compare-and-swap needs one or two rounds; this many means something is wrong. */
const MAX_ROUNDS = 20;

interface Secret extends k8s.KubernetesObject {
  type?: string;
  data?: Record<string, string>;
}

export const secretName = (mesh: string) => `meshflow-trust-${mesh}`;
const dataKey = (entry: string) => entry.replaceAll('/', '_');
const entryName = (key: string) => key.replaceAll('_', '/');
const code = (err: unknown) => (err as { code?: unknown }).code;

export class KubernetesTrustStore implements TrustStore {
  readonly shared = true;
  /** `label` names the cluster in messages (its kubeconfig and context); the config's credentials are never shown. */
  constructor(
    private readonly config: k8s.KubeConfig,
    readonly namespace: string,
    private readonly label: string,
  ) {}

  get where(): string {
    return `namespace ${this.namespace} of ${this.label}`;
  }

  private kube(signal?: AbortSignal): Kube {
    return new Kube(this.config, signal);
  }

  private path(mesh?: string): string {
    const base = `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/secrets`;
    return mesh === undefined ? base : `${base}/${encodeURIComponent(secretName(mesh))}`;
  }

  /** The mesh's Secret, or undefined; one that is not the mesh's is refused (a user's Secret of the same name). */
  private async read(kube: Kube, mesh: string): Promise<Secret | undefined> {
    let secret: Secret;
    try {
      secret = await kube.requestJson<Secret>('GET', this.path(mesh));
    } catch (err) {
      if (code(err) === 404) return undefined;
      throw this.explained(err);
    }
    if (!ownedBy(secret, mesh)) {
      throw new NotOursError(
        `Secret ${this.namespace}/${secretName(mesh)} in the trust store (${this.where}) is not mesh ${mesh}'s ` +
          `(no ${MANAGED_BY}=meshflow, ${MESH_LABEL}=${mesh} labels): meshflow neither uses nor deletes it`,
      );
    }
    return secret;
  }

  /** API errors name the store; a definite refusal (forbidden, no such namespace) is permanent. */
  private explained(err: unknown): Error {
    const message = `trust store (${this.where}): ${(err as Error).message}`;
    if (code(err) === 403 || code(err) === 404 || code(err) === 422) return new PermanentError(message);
    return Object.assign(new Error(message), { code: code(err) });
  }

  async get(mesh: string, name: string, signal?: AbortSignal): Promise<string | undefined> {
    checkEntryNames([name]);
    const value = (await this.read(this.kube(signal), mesh))?.data?.[dataKey(name)];
    return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
  }

  async putIfAbsent(
    mesh: string,
    entries: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<Record<string, string>> {
    const names = Object.keys(entries);
    checkEntryNames(names);
    const kube = this.kube(signal);
    const encoded = Object.fromEntries(names.map((n) => [dataKey(n), Buffer.from(entries[n]).toString('base64')]));
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const secret = await this.read(kube, mesh);
      const data = secret?.data ?? {};
      if (names.every((n) => data[dataKey(n)] !== undefined)) {
        return Object.fromEntries(names.map((n) => [n, Buffer.from(data[dataKey(n)], 'base64').toString('utf8')]));
      }
      try {
        if (secret) {
          // resourceVersion from the read: a write by anyone since then is refused (409) and read again.
          await kube.requestJson('PUT', this.path(mesh), { ...secret, data: { ...data, ...encoded } });
        } else {
          await kube.requestJson('POST', this.path(), this.newSecret(mesh, encoded));
        }
        return { ...entries };
      } catch (err) {
        // Another writer got there first (or our own write whose answer was lost, retried): read again.
        if (code(err) !== 409) throw this.explained(err);
      }
    }
    throw new Error(`trust store (${this.where}): Secret ${secretName(mesh)} kept changing under ${MAX_ROUNDS} writes`);
  }

  private newSecret(mesh: string, data: Record<string, string>): Secret {
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: secretName(mesh),
        namespace: this.namespace,
        labels: { [MANAGED_BY]: 'meshflow', [MESH_LABEL]: mesh },
        annotations: { [OWNER_ANNOTATION]: OWNER },
      },
      type: 'Opaque',
      data,
    };
  }

  async list(mesh: string, signal?: AbortSignal): Promise<string[]> {
    const secret = await this.read(this.kube(signal), mesh);
    return Object.keys(secret?.data ?? {})
      .map(entryName)
      .sort();
  }

  async removeEntries(mesh: string, names: string[], signal?: AbortSignal): Promise<void> {
    checkEntryNames(names);
    const kube = this.kube(signal);
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const secret = await this.read(kube, mesh);
      const data = { ...secret?.data };
      if (!secret || !names.some((n) => data[dataKey(n)] !== undefined)) return;
      for (const n of names) delete data[dataKey(n)];
      try {
        // Compare-and-swap as putIfAbsent: an entry written meanwhile by anyone is read again, never lost.
        if (Object.keys(data).length) await kube.requestJson('PUT', this.path(mesh), { ...secret, data });
        else
          await kube.requestJson('DELETE', this.path(mesh), {
            apiVersion: 'v1',
            kind: 'DeleteOptions',
            preconditions: { uid: secret.metadata?.uid, resourceVersion: secret.metadata?.resourceVersion },
          });
        return;
      } catch (err) {
        if (code(err) !== 409 && code(err) !== 404) throw this.explained(err);
      }
    }
    throw new Error(`trust store (${this.where}): Secret ${secretName(mesh)} kept changing under ${MAX_ROUNDS} writes`);
  }

  /** Deletes the mesh's Secret when it carries the mesh's labels (a Secret that is not its own stays). */
  async deleteMesh(mesh: string, signal?: AbortSignal): Promise<void> {
    const kube = this.kube(signal);
    let secret: Secret;
    try {
      secret = await kube.requestJson<Secret>('GET', this.path(mesh));
    } catch (err) {
      if (code(err) === 404) return;
      throw this.explained(err);
    }
    if (!ownedBy(secret, mesh)) return;
    try {
      // Only the version read above: a Secret replaced meanwhile by someone else's is not deleted.
      await kube.requestJson('DELETE', this.path(mesh), {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        preconditions: { uid: secret.metadata?.uid },
      });
    } catch (err) {
      if (code(err) !== 404) throw this.explained(err);
    }
  }

  ledgerResource(mesh: string): Resource {
    return { type: 'trust', mesh };
  }
}
