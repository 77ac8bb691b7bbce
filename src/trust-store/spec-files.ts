// What a spec names outside itself (a user's root CA, an existing cluster's kubeconfig, app
// manifests) and a root CA given as PEM text, copied into the mesh's trust store when the mesh is
// started (`meshflow up`, `POST /v1/meshes`). The spec the run records keeps each file's path for
// display and the entry that holds its content (`stored`), never the content: workflow history
// holds no key or kubeconfig, and the steps read the store, not the submitting host's disk, so any
// worker that reaches the store runs them. Entries are `files/<nonce>/...`, a nonce per start, so a
// start that is refused (the mesh already runs) removes exactly what it copied.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import * as k8s from '@kubernetes/client-node';
import { checkUserRoot, userRootEntries, userRootPem } from '../istio/trust';
import type { ClusterSpec, MeshSpec } from '../spec/schema';
import { PermanentError } from '../util/errors';
import type { TrustStore } from './store';

/**
 * At most this much is copied per mesh: the Kubernetes store keeps a mesh's entries in one Secret,
 * which the API server caps at 1 MiB, and the CAs meshflow makes later need room beside them.
 */
export const MAX_COPIED_BYTES = 768 * 1024;

/** What a start copied: the spec to record, and the entries to remove should the start fail. */
export interface CopiedFiles {
  spec: MeshSpec;
  entries: string[];
}

/** Whether a spec names anything to copy: files, or a root CA as PEM text. */
export function namesFiles(spec: MeshSpec): boolean {
  return (
    spec.trust.rootCa !== undefined ||
    spec.clusters.some((c) => c.existing !== undefined) ||
    spec.app.manifests.length > 0
  );
}

/** A root CA given as PEM text (which no workflow input may carry). */
export const hasInlineRoot = (spec: MeshSpec) => {
  const root = spec.trust.rootCa;
  return root !== undefined && (root.cert !== undefined || root.key !== undefined || root.chain !== undefined);
};

/**
 * Copies what the spec names into `store` (checked first: a root CA must be one meshflow can sign
 * with) and answers the spec to record. With a store of one host's disk (the state directory) the
 * files stay where they are and are read there, as before: only a root given as PEM text is
 * refused, since it would otherwise travel in the workflow's input.
 */
export async function copySpecFiles(store: TrustStore, spec: MeshSpec, signal?: AbortSignal): Promise<CopiedFiles> {
  if (!namesFiles(spec)) return { spec, entries: [] };
  if (!store.shared) {
    if (hasInlineRoot(spec)) {
      throw new PermanentError(
        `trust.rootCa: a root CA given as PEM is kept in a trust store every worker reads, and this one is the ` +
          `${store.where}: set MESHFLOW_TRUST_STORE=kubernetes:<kubeconfig>[#context]/<namespace> (as the workers ` +
          'have it), or name the files with certFile and keyFile',
      );
    }
    return { spec, entries: [] };
  }
  const base = `files/${randomBytes(4).toString('hex')}`;
  const copies: Record<string, string> = {};
  let trust = spec.trust;
  if (spec.trust.rootCa) {
    const { cert: _c, key: _k, chain: _ch, ...names } = spec.trust.rootCa;
    const pem = await userRootPem(spec.trust.rootCa);
    await checkUserRoot(pem);
    const at = userRootEntries(`${base}/root-ca`);
    copies[at.cert] = pem.cert;
    copies[at.key] = pem.key;
    if (pem.chain !== undefined) copies[at.chain] = pem.chain;
    trust = { ...spec.trust, rootCa: { ...names, stored: `${base}/root-ca` } };
  }
  const clusters = spec.clusters.map((c): ClusterSpec => {
    if (!c.existing) return c;
    const entry = `${base}/clusters/${c.name}/kubeconfig`;
    const { text, context } = contextOnly(c);
    copies[entry] = text;
    return { ...c, existing: { ...c.existing, context, stored: entry } };
  });
  const manifests = spec.app.manifests.map((m, i) => {
    const entry = `${base}/manifests/${i}.yaml`;
    try {
      copies[entry] = fs.readFileSync(m.file, 'utf8');
    } catch (err) {
      throw new PermanentError(`app.manifests[${i}].file: cannot read ${m.file}: ${(err as Error).message}`);
    }
    return { ...m, stored: entry };
  });
  const bytes = Object.values(copies).reduce((n, v) => n + Buffer.byteLength(v), 0);
  if (bytes > MAX_COPIED_BYTES) {
    throw new PermanentError(
      `the files the spec names hold ${Math.ceil(bytes / 1024)} KiB, over the ${MAX_COPIED_BYTES / 1024} KiB ` +
        'the trust store keeps per mesh: apply large manifests yourself, or split them over meshes',
    );
  }
  await store.putIfAbsent(spec.name, copies, signal);
  return {
    spec: { ...spec, trust, clusters, app: { ...spec.app, manifests } },
    entries: Object.keys(copies),
  };
}

/** The files of the new root `meshflow rotate NAME root` gives (--root-cert, --root-key, --root-chain). */
export interface NewRootFiles {
  certFile: string;
  keyFile: string;
  chainFile?: string;
}

/**
 * The new root of a mesh with the user's own root, read from the files given, checked (messages
 * name the flag and file, never the content) and copied into the mesh's trust store as `up` copies
 * a root (`files/<nonce>/root-ca`): the rotation's request names only that entry and the files.
 * Copied into a store of one host's disk too: the steps that read it run on that host.
 */
export async function copyNewRoot(
  store: TrustStore,
  mesh: string,
  files: NewRootFiles,
  signal?: AbortSignal,
): Promise<{ newRoot: NewRootFiles & { stored: string }; entries: string[] }> {
  const read = (file: string, flag: string) => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new PermanentError(`${flag} ${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  const pem = {
    cert: read(files.certFile, '--root-cert'),
    key: read(files.keyFile, '--root-key'),
    ...(files.chainFile !== undefined ? { chain: read(files.chainFile, '--root-chain') } : {}),
    names: {
      cert: `--root-cert ${files.certFile}`,
      key: `--root-key ${files.keyFile}`,
      chain: `--root-chain ${files.chainFile ?? ''}`,
    },
  };
  await checkUserRoot(pem);
  const stored = `files/${randomBytes(4).toString('hex')}/root-ca`;
  const at = userRootEntries(stored);
  const copies: Record<string, string> = { [at.cert]: pem.cert, [at.key]: pem.key };
  if (pem.chain !== undefined) copies[at.chain] = pem.chain;
  await store.putIfAbsent(mesh, copies, signal);
  return { newRoot: { ...files, stored }, entries: Object.keys(copies) };
}

/**
 * The named context of an existing cluster's kubeconfig (its current one when none is named) as a
 * kubeconfig of its own: that context, its cluster and its user, with the files they name (CA,
 * client certificate and key) inlined, since the worker that reads it has none of them.
 */
export function contextOnly(c: ClusterSpec): { text: string; context: string } {
  const file = c.existing!.kubeconfig.replace(/^~(?=\/)/, os.homedir());
  const where = `clusters[${c.name}].existing`;
  const kc = new k8s.KubeConfig();
  try {
    kc.loadFromFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // The parser's message may quote the file, keys included: say only what is wrong.
    throw new PermanentError(
      `${where}.kubeconfig: ${file} ${code ? `cannot be read (${code})` : 'is not a kubeconfig'}`,
    );
  }
  const name = c.existing!.context ?? kc.getCurrentContext();
  const context = kc.getContextObject(name);
  if (!context) throw new PermanentError(`${where}.context: no context "${name}" in ${file}`);
  const cluster = kc.getCluster(context.cluster);
  if (!cluster) throw new PermanentError(`${where}.context: context "${name}" of ${file} names no cluster there`);
  const user = context.user ? kc.getUser(context.user) : null;
  const data = (inline: string | undefined, path: string | undefined, field: string) => {
    if (inline !== undefined || path === undefined) return inline;
    try {
      return fs.readFileSync(path).toString('base64');
    } catch (err) {
      throw new PermanentError(
        `${where}.kubeconfig: the ${field} ${path} that ${file} names cannot be read: ` +
          `${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
  };
  const one = new k8s.KubeConfig();
  one.loadFromOptions({
    clusters: [{ ...cluster, caData: data(cluster.caData, cluster.caFile, 'CA file'), caFile: undefined }],
    users: user
      ? [
          {
            ...user,
            certData: data(user.certData, user.certFile, 'client certificate'),
            certFile: undefined,
            keyData: data(user.keyData, user.keyFile, 'client key'),
            keyFile: undefined,
          },
        ]
      : [],
    contexts: [context],
    currentContext: name,
  });
  return { text: one.exportConfig(), context: name };
}
