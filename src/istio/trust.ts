// The mesh's shared trust, made the way Istio's tools/certs does it: one root CA (10 years,
// O=Istio, CN=Root CA) and per cluster an intermediate CA (L=<cluster>, pathlen 0, SAN
// istiod.istio-system.svc), with the spec's key type (trust.keyAlgorithm): ECDSA P-256 or, as
// tools/certs does, RSA 4096; signed with SHA-256. A user may bring their own root (files they
// keep, or PEM text; `up` copies either into the mesh's trust store, and the steps read it there;
// meshflow never changes or deletes the user's files). Keys stay in the mesh's trust store
// entries and in each cluster's `cacerts` secret; they never travel through workflow history.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import { PermanentError } from '../util/errors';
import { DEFAULT_INTERMEDIATE_VALIDITY, parseDuration } from '../spec/duration';
import type { CaKeyAlgorithm } from '../spec/schema';
import {
  type Issued,
  type KeyPair,
  certificatePem,
  generateKeyPair,
  importKeyPair,
  issue,
  keyAlgorithmOf,
  keysMatch,
  privateKeyPem,
  x509,
} from '../pki/certs';

const KU = x509.KeyUsageFlags;
const CA_USAGES = KU.digitalSignature | KU.nonRepudiation | KU.keyEncipherment | KU.keyCertSign;
const DAYS = 3650;

/** One mesh's entries in its trust store, as the CA code reads and writes them (trust-store/ implements it). */
export interface MeshEntries {
  get(name: string, signal?: AbortSignal): Promise<string | undefined>;
  putIfAbsent(entries: Record<string, string>, signal?: AbortSignal): Promise<Record<string, string>>;
  list(signal?: AbortSignal): Promise<string[]>;
  remove(names: string[], signal?: AbortSignal): Promise<void>;
}

export interface CacertsFiles {
  'ca-cert.pem': string;
  'ca-key.pem': string;
  'root-cert.pem': string;
  'cert-chain.pem': string;
}

/**
 * A root CA the user keeps (spec `trust.rootCa`): files on the worker's host, PEM text, or, once
 * `up` has copied either into the mesh's trust store, the prefix of its entries there (`stored`;
 * the file names are then kept for messages only).
 */
export interface UserRoot {
  certFile?: string;
  keyFile?: string;
  /** When the certificate is an intermediate of the user's PKI: the certificates above it, up to the root. */
  chainFile?: string;
  cert?: string;
  key?: string;
  chain?: string;
  stored?: string;
}

/** The entries of a user's root copied into the trust store, under `stored`. */
export const userRootEntries = (stored: string) => ({
  cert: `${stored}/cert.pem`,
  key: `${stored}/key.pem`,
  chain: `${stored}/chain.pem`,
});

/** A user's root as PEM text, with how messages name each part (a field and file, never the content). */
export interface UserRootPem {
  cert: string;
  key: string;
  chain?: string;
  names: { cert: string; key: string; chain: string };
}

/** How messages name the parts of a user's root: by field and file, or by field alone for PEM text. */
export function userRootNames(user: UserRoot): UserRootPem['names'] {
  const name = (file: 'certFile' | 'keyFile' | 'chainFile', text: 'cert' | 'key' | 'chain') =>
    user[file] !== undefined ? `trust.rootCa.${file}: ${user[file]}` : `trust.rootCa.${text} (PEM)`;
  return { cert: name('certFile', 'cert'), key: name('keyFile', 'key'), chain: name('chainFile', 'chain') };
}

/** The spec's `trust`: whose root, and the key type of the CAs meshflow makes. */
export interface TrustSettings {
  rootCa?: UserRoot;
  keyAlgorithm: CaKeyAlgorithm;
  /** How long each cluster's intermediate lives (a duration, e.g. 730d); older specs: the default. */
  intermediateValidity?: string;
}

/** The CA that signs the clusters' intermediates, and the certificates above it (empty when it is the root). */
export interface MeshRoot extends Issued {
  chain: x509.X509Certificate[];
}

/** A CA meshflow made earlier (whatever its key type: a CA is reused as it was made). */
async function loadIssued(what: string, certPem: string, keyPem: string): Promise<Issued> {
  const certificate = new x509.X509Certificate(certPem);
  const algorithm = keyAlgorithmOf(certificate);
  if (!algorithm) throw new PermanentError(`${what} has a key type meshflow does not sign with`);
  const key: KeyPair = await importKeyPair(algorithm, keyPem, certificate);
  return { certificate, key };
}

/** The entries of a CA: its key, then its certificate (whose presence marks the CA complete). */
const caEntries = (prefix: string) => ({ key: `${prefix}-key.pem`, cert: `${prefix}-cert.pem` });
const ROOT = caEntries('root');
/** A cluster's intermediate: generation 1 under `<cluster>/ca-*` (as meshes always had it), later `ca.g<n>-*`. */
const clusterEntries = (cluster: string, generation = 1) =>
  caEntries(generation === 1 ? `${cluster}/ca` : `${cluster}/ca.g${generation}`);

/**
 * A CA from the store, or made now and stored unless another attempt stored one first: then that
 * one is used and this one dropped, so every intermediate is signed by the one root that is kept.
 */
async function ensureCa(
  entries: MeshEntries,
  names: { key: string; cert: string },
  make: () => Promise<Issued>,
  signal?: AbortSignal,
): Promise<{ keyPem: string; certPem: string }> {
  // The certificate first: it is written last, so a key read after it is its key, never a
  // leftover of a write that stopped half-way.
  const certPem = await entries.get(names.cert, signal);
  const keyPem = certPem === undefined ? undefined : await entries.get(names.key, signal);
  if (keyPem !== undefined && certPem !== undefined) return { keyPem, certPem };
  const made = await make();
  const stored = await entries.putIfAbsent(
    { [names.key]: await privateKeyPem(made.key), [names.cert]: certificatePem(made.certificate) },
    signal,
  );
  return { keyPem: stored[names.key], certPem: stored[names.cert] };
}

/**
 * meshflow's own root of the given generation (default: the newest stored, or the first): made
 * once, reused on retry and by a concurrent attempt. A root rotation makes the next generation;
 * while two are stored, clusters trust both.
 */
export async function ensureRootCa(
  entries: MeshEntries,
  algorithm: CaKeyAlgorithm,
  signal?: AbortSignal,
  generation?: number,
): Promise<Issued> {
  const g = generation ?? Math.max(1, ...(await rootGenerations(entries, signal)));
  const names = rootEntries(g);
  // Callers in this process share one making of the root (the mesh step asks once per cluster):
  // an RSA 4096 key takes seconds, and only one of several would be kept.
  const making = makingRoots.get(entries) ?? new Map<number, Promise<Issued>>();
  makingRoots.set(entries, making);
  const pending = making.get(g);
  if (pending) return pending;
  const made = (async () => {
    const { keyPem, certPem } = await ensureCa(
      entries,
      names,
      async () => {
        const key = await generateKeyPair(algorithm);
        const certificate = await issue(
          { subject: 'O=Istio, CN=Root CA', days: DAYS, ca: {}, keyUsages: CA_USAGES },
          key,
        );
        return { certificate, key };
      },
      signal,
    );
    return loadIssued(`the root CA (${names.cert})`, certPem, keyPem);
  })().finally(() => making.delete(g));
  making.set(g, made);
  return made;
}

/** meshflow's own root of generation g: 1 under `root-*` (as meshes always had it), later ones `root.g<n>-*`. */
const rootEntries = (generation: number) => caEntries(generation === 1 ? 'root' : `root.g${generation}`);

/** The generations of meshflow's own root whose certificate is stored, oldest first (none before the first). */
export async function rootGenerations(entries: MeshEntries, signal?: AbortSignal): Promise<number[]> {
  const found: number[] = [];
  for (const name of await entries.list(signal)) {
    if (name === ROOT.cert) found.push(1);
    const later = /^root\.g(\d+)-cert\.pem$/.exec(name);
    if (later) found.push(Number(later[1]));
  }
  return found.sort((a, b) => a - b);
}

/** The certificates of every stored root of meshflow's own, oldest first: what every cluster trusts. */
async function storedRoots(entries: MeshEntries, signal?: AbortSignal): Promise<x509.X509Certificate[]> {
  const pems = await Promise.all(
    (await rootGenerations(entries, signal)).map((g) => entries.get(rootEntries(g).cert, signal)),
  );
  return pems.filter((p): p is string => p !== undefined).map((p) => new x509.X509Certificate(p));
}

/** Removes meshflow's own roots older than generation `keep` (a root rotation's last stage). */
export async function retireRoots(entries: MeshEntries, keep: number, signal?: AbortSignal): Promise<number[]> {
  const retired: number[] = [];
  for (const g of await rootGenerations(entries, signal)) {
    if (g >= keep) continue;
    // The certificate first: a key without it is no CA (see ensureCa).
    await entries.remove([rootEntries(g).cert], signal);
    await entries.remove([rootEntries(g).key], signal);
    retired.push(g);
  }
  return retired;
}

/** Roots being made in this process, by the entries they go to and their generation. */
const makingRoots = new WeakMap<MeshEntries, Map<number, Promise<Issued>>>();

/**
 * The PEM of a user's root: from the trust store when `up` copied it there, else from the spec's
 * text or the files on this host (meshes started before the copy existed name host paths).
 */
export async function userRootPem(user: UserRoot, entries?: MeshEntries, signal?: AbortSignal): Promise<UserRootPem> {
  const names = userRootNames(user);
  if (user.stored !== undefined) {
    const at = userRootEntries(user.stored);
    const get = async (part: 'cert' | 'key' | 'chain') => {
      const value = await entries?.get(at[part], signal);
      if (value === undefined && part !== 'chain') {
        throw new PermanentError(
          `${names[part]}: not in the mesh's trust store (entry ${at[part]}), where up copied it: ` +
            'give every worker the MESHFLOW_TRUST_STORE the mesh was started with',
        );
      }
      return value;
    };
    const [cert, key, chain] = await Promise.all([get('cert'), get('key'), get('chain')]);
    return { cert: cert!, key: key!, ...(chain !== undefined ? { chain } : {}), names };
  }
  const read = (field: 'certFile' | 'keyFile' | 'chainFile', text: 'cert' | 'key' | 'chain') => {
    if (user[text] !== undefined) return user[text];
    if (user[field] === undefined) return undefined;
    try {
      return fs.readFileSync(user[field], 'utf8');
    } catch (err) {
      throw new PermanentError(`trust.rootCa.${field}: cannot read ${user[field]}: ${(err as Error).message}`);
    }
  };
  const cert = read('certFile', 'cert');
  const key = read('keyFile', 'key');
  if (cert === undefined || key === undefined)
    throw new PermanentError('trust.rootCa: needs a certificate and its key');
  const chain = read('chainFile', 'chain');
  return { cert, key, ...(chain !== undefined ? { chain } : {}), names };
}

/** The user's root CA, checked: a CA certificate, valid, allowed to sign intermediates, with its key. */
export async function loadUserRoot(user: UserRoot, entries?: MeshEntries, signal?: AbortSignal): Promise<MeshRoot> {
  return checkUserRoot(await userRootPem(user, entries, signal));
}

/** The checks of a user's root, on its PEM; messages name the parts, never quote them. */
export async function checkUserRoot(pem: UserRootPem): Promise<MeshRoot> {
  const { names } = pem;
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(pem.cert);
  } catch {
    throw new PermanentError(`${names.cert} is not a PEM certificate`);
  }
  const bad = (why: string) => new PermanentError(`${names.cert} ${why}`);
  const constraints = certificate.getExtension(x509.BasicConstraintsExtension);
  if (!constraints?.ca) throw bad('is not a CA certificate (basicConstraints CA:TRUE is missing)');
  if (constraints.pathLength === 0) {
    throw bad('has pathlen 0: it may not sign the per-cluster intermediate CAs Istio needs');
  }
  const usage = certificate.getExtension(x509.KeyUsagesExtension);
  if (usage && !(usage.usages & KU.keyCertSign)) throw bad('lacks the keyCertSign key usage');
  const inADay = new Date(Date.now() + 86_400_000);
  if (certificate.notAfter < inADay) {
    throw bad(`expires ${certificate.notAfter.toISOString()}: use a root valid for longer than the mesh`);
  }
  const algorithm = keyAlgorithmOf(certificate);
  if (!algorithm) throw bad('has a key meshflow cannot sign with (use RSA 2048/3072/4096 or ECDSA P-256/P-384)');
  let key: KeyPair;
  try {
    // PKCS#1 ("RSA PRIVATE KEY"), SEC1 ("EC PRIVATE KEY") or PKCS#8: WebCrypto takes only the last.
    const pkcs8 = createPrivateKey(pem.key).export({ type: 'pkcs8', format: 'pem' }).toString();
    key = await importKeyPair(algorithm, pkcs8, certificate);
  } catch {
    throw new PermanentError(
      `${names.key} is not an unencrypted PEM ${algorithm} private key ` +
        '(decrypt it with `openssl pkey -in KEY -out PLAIN`)',
    );
  }
  if (!(await keysMatch(key))) {
    throw new PermanentError(`${names.key} is not the key of ${names.cert.replace(/^trust\.rootCa\.\w+: /, '')}`);
  }
  const chain = pem.chain !== undefined ? await loadChain(certificate, names.chain, pem.chain) : [];
  return { certificate, key, chain };
}

/** The certificates of chainFile, ordered from the one that signed `signer` up to a self-signed root. */
async function loadChain(signer: x509.X509Certificate, name: string, pem: string): Promise<x509.X509Certificate[]> {
  let certs: x509.X509Certificate[];
  try {
    certs = x509.PemConverter.decode(pem).map((der) => new x509.X509Certificate(der));
  } catch {
    throw new PermanentError(`${name} is not a PEM bundle of certificates`);
  }
  const chain: x509.X509Certificate[] = [];
  for (let child = signer; !(await child.isSelfSigned());) {
    const parent = certs.find((c) => c.subject === child.issuer && !chain.includes(c));
    if (!parent || !(await child.verify({ publicKey: parent.publicKey, signatureOnly: true }))) {
      throw new PermanentError(
        `${name} has no certificate that signed "${child.subject}": ` +
          'it must hold every CA certificate above the root CA certificate, up to the self-signed root',
      );
    }
    chain.push(parent);
    child = parent;
  }
  return chain;
}

/** A user's root in the store: the prefix `up` (or `rotate root`) copied it under, as `files/<nonce>/root-ca`. */
const STORED_USER_ROOT = /^(files\/[^/]+\/root-ca)\/cert\.pem$/;

/** The certificates of a user's root (its certificate, then its chain up to the self-signed top): no key is read. */
interface UserRootCerts {
  stored?: string;
  above: x509.X509Certificate[];
  top: x509.X509Certificate;
}

async function userRootCerts(certPem: string, chainPem?: string, stored?: string): Promise<UserRootCerts> {
  const certificate = new x509.X509Certificate(certPem);
  const chain = chainPem !== undefined ? await loadChain(certificate, 'the chain of a stored root', chainPem) : [];
  const above = [certificate, ...chain];
  return { stored, above, top: above[above.length - 1] };
}

/**
 * The users' roots in the store other than `current` (the spec's): the new root a `rotate root`
 * copied there, or during its grace the old one; once it ends only copies of `current` are left.
 */
async function otherUserRoots(entries: MeshEntries, current: UserRoot, signal?: AbortSignal) {
  const found: UserRootCerts[] = [];
  for (const name of await entries.list(signal)) {
    const prefix = STORED_USER_ROOT.exec(name)?.[1];
    if (prefix === undefined || prefix === current.stored) continue;
    const at = userRootEntries(prefix);
    const [cert, chain] = await Promise.all([entries.get(at.cert, signal), entries.get(at.chain, signal)]);
    if (cert !== undefined) found.push(await userRootCerts(cert, chain, prefix));
  }
  return found;
}

/** Fingerprints, each once, in order. */
async function uniqueByFingerprint(certs: x509.X509Certificate[]): Promise<x509.X509Certificate[]> {
  const seen = new Set<string>();
  const out: x509.X509Certificate[] = [];
  for (const c of certs) {
    const f = await fingerprintOf(c);
    if (!seen.has(f)) out.push(c);
    seen.add(f);
  }
  return out;
}

/**
 * Removes the users' roots stored beside `keep` (the spec's root once a root rotation switched to
 * it) whose certificate is another: the old root leaves the store, and with it every bundle.
 * Copies of `keep` (an `apply` copies the root again) stay. Answers the prefixes removed.
 */
export async function retireUserRoots(entries: MeshEntries, keep: UserRoot, signal?: AbortSignal): Promise<string[]> {
  const kept = new x509.X509Certificate((await userRootPem(keep, entries, signal)).cert);
  const keptPrint = await fingerprintOf(kept);
  const retired: string[] = [];
  for (const other of await otherUserRoots(entries, keep, signal)) {
    if ((await fingerprintOf(other.above[0])) === keptPrint) continue;
    const at = userRootEntries(other.stored!);
    // The certificate first: a key without it is no root anyone reads.
    await entries.remove([at.cert], signal);
    await entries.remove([at.key, at.chain], signal);
    retired.push(other.stored!);
  }
  return retired;
}

/**
 * The fingerprints of the roots a mesh with a user's root trusts (the tops of `user`'s chain and of
 * every other user's root in the store, each once): what every cluster's root-cert.pem holds.
 */
export async function userTrustedRoots(entries: MeshEntries, user: UserRoot, signal?: AbortSignal): Promise<string[]> {
  const pem = await userRootPem(user, entries, signal);
  const mine = await userRootCerts(pem.cert, pem.chain);
  const others = await otherUserRoots(entries, user, signal);
  return Promise.all((await uniqueByFingerprint([mine.top, ...others.map((o) => o.top)])).map(fingerprintOf));
}

/** The mesh's root: the user's when the spec names one, else the one meshflow keeps in the store. */
export async function meshRoot(entries: MeshEntries, trust: TrustSettings, signal?: AbortSignal): Promise<MeshRoot> {
  return trust.rootCa
    ? loadUserRoot(trust.rootCa, entries, signal)
    : { ...(await ensureRootCa(entries, trust.keyAlgorithm, signal)), chain: [] };
}

/**
 * The mesh's root certificate (PEM), the trust anchor every cluster's `root-cert.pem` must be: the
 * self-signed top of the user's certificate and chain, or meshflow's own root. Only certificates
 * are read, never a key, and nothing is made: undefined when the store holds no root (yet).
 */
export async function meshRootCertificate(
  entries: MeshEntries,
  trust: Pick<TrustSettings, 'rootCa'>,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const user = trust.rootCa;
  if (!user) {
    // Every stored root: during a root rotation clusters trust both, and issue from either.
    const roots = await storedRoots(entries, signal);
    return roots.length ? roots.map(certificatePem).join('') : undefined;
  }
  let pems: Array<string | undefined>;
  if (user.stored !== undefined) {
    const at = userRootEntries(user.stored);
    pems = await Promise.all([entries.get(at.cert, signal), entries.get(at.chain, signal)]);
  } else {
    const read = (file?: string) =>
      file !== undefined && fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
    pems = [user.cert ?? read(user.certFile), user.chain ?? read(user.chainFile)];
  }
  if (pems[0] === undefined) return undefined;
  const certs = x509.PemConverter.decode(pems.filter((p) => p !== undefined).join('\n')).map(
    (der) => new X509Certificate(Buffer.from(der)),
  );
  const top = certs.find((c) => c.checkIssued(c) && c.verify(c.publicKey)) ?? certs[0];
  // During a root rotation the other user's root in the store is trusted too (the old or the new one).
  const others = await otherUserRoots(entries, user, signal);
  const tops = await uniqueByFingerprint([new x509.X509Certificate(top.raw), ...others.map((o) => o.top)]);
  return tops.length === 1 ? top.toString() : tops.map(certificatePem).join('');
}

/**
 * The root and every cluster's intermediate, all keys generated at once (asynchronously, on
 * libuv's threads: RSA 4096 keys take seconds each, and no intermediate waits for the root's key).
 */
export async function ensureMeshCas(
  entries: MeshEntries,
  clusters: string[],
  trust: TrustSettings,
  signal?: AbortSignal,
): Promise<MeshRoot> {
  const [root] = await Promise.all([
    meshRoot(entries, trust, signal),
    ...clusters.map((c) => ensureClusterCa(entries, c, trust, signal)),
  ]);
  return root;
}

/** A cluster's intermediate CA: the four files of its `cacerts` secret, and which one it is. */
export interface ClusterCa {
  files: CacertsFiles;
  /** 1 for the intermediate the mesh was made with; each rotation makes the next. */
  generation: number;
  notAfter: string;
  /** The first 16 hex digits of the certificate's SHA-256: how status and messages name it. */
  fingerprint: string;
}

/** The newest generation of a cluster's intermediate in the store (0: none is there yet). */
export async function currentGeneration(entries: MeshEntries, cluster: string, signal?: AbortSignal): Promise<number> {
  let newest = 0;
  for (const name of await entries.list(signal)) {
    if (name === clusterEntries(cluster, 1).cert) newest = Math.max(newest, 1);
    const later = name.startsWith(`${cluster}/`) && /^ca\.g(\d+)-cert\.pem$/.exec(name.slice(cluster.length + 1));
    if (later) newest = Math.max(newest, Number(later[1]));
  }
  return newest;
}

/** The certificate's SHA-256, first 16 hex digits. */
export async function fingerprintOf(cert: x509.X509Certificate): Promise<string> {
  return Buffer.from(await cert.getThumbprint('SHA-256'))
    .toString('hex')
    .slice(0, 16);
}

/** A cluster's intermediate CA and the four files of its `cacerts` secret (its newest generation). */
export async function ensureClusterCa(
  entries: MeshEntries,
  cluster: string,
  trust: TrustSettings,
  signal?: AbortSignal,
): Promise<CacertsFiles> {
  return (await clusterCa(entries, cluster, trust, undefined, signal)).files;
}

/**
 * A cluster's intermediate of the given generation (default: the newest stored, or the first),
 * made now and stored unless it is there: a retried rotation gets the intermediate its first
 * attempt made. Signed by the mesh's root, valid for `trust.intermediateValidity`.
 */
export async function clusterCa(
  entries: MeshEntries,
  cluster: string,
  trust: TrustSettings,
  generation?: number,
  signal?: AbortSignal,
): Promise<ClusterCa> {
  const rootReady = meshRoot(entries, trust, signal);
  rootReady.catch(() => undefined); // awaited below; meanwhile a refusal must not go unhandled
  // The user's root is read and checked (milliseconds) before anything is written.
  if (trust.rootCa) await rootReady;
  const g = generation ?? Math.max(1, await currentGeneration(entries, cluster, signal));
  const validityMs = parseDuration(trust.intermediateValidity ?? DEFAULT_INTERMEDIATE_VALIDITY);
  const { keyPem, certPem } = await ensureCa(
    entries,
    clusterEntries(cluster, g),
    async () => {
      // This key is made while meshflow's own root is (the root is needed only to sign).
      const [root, key] = await Promise.all([rootReady, generateKeyPair(trust.keyAlgorithm)]);
      const certificate = await issue(
        {
          subject: `O=Istio, CN=Intermediate CA, L=${cluster}`,
          validityMs,
          ca: { pathLength: 0 },
          keyUsages: CA_USAGES,
          dnsNames: ['istiod.istio-system.svc'],
        },
        key,
        root,
      );
      return { certificate, key };
    },
    signal,
  );
  const root = await rootReady;
  const certificate = new x509.X509Certificate(certPem);
  // cert-chain: the cluster's intermediate, then every CA above it up to the root (Istio's order).
  const above = [root.certificate, ...root.chain].map(certificatePem);
  let bundle = above[above.length - 1];
  if (trust.rootCa) {
    // A user's root: while a rotation keeps the old and the new one in the store, the intermediate
    // chains to the one that signed it (the spec's root signs new ones) and the cluster trusts both.
    const others = await otherUserRoots(entries, trust.rootCa, signal);
    if (others.length) {
      for (const o of others)
        if (
          !(await certificate.verify({ publicKey: root.certificate.publicKey, signatureOnly: true })) &&
          (await certificate.verify({ publicKey: o.above[0].publicKey, signatureOnly: true }))
        )
          above.splice(0, above.length, ...o.above.map(certificatePem));
      const tops = [
        root.chain.length ? root.chain[root.chain.length - 1] : root.certificate,
        ...others.map((o) => o.top),
      ];
      const trusted = await uniqueByFingerprint(tops);
      // Only copies of the spec's root (an apply copies it again): the bundle stays the user's PEM as it was.
      if (trusted.length > 1) bundle = trusted.map(certificatePem).join('');
    }
  } else {
    // meshflow's own root: while a rotation keeps two, the intermediate chains to the one that signed
    // it (the newest signs new ones) and the cluster trusts both.
    const roots = await storedRoots(entries, signal);
    for (const r of roots)
      if (await certificate.verify({ publicKey: r.publicKey, signatureOnly: true })) above[0] = certificatePem(r);
    bundle = roots.map(certificatePem).join('') || bundle;
  }
  return {
    files: {
      'ca-cert.pem': certPem,
      'ca-key.pem': keyPem,
      'root-cert.pem': bundle,
      'cert-chain.pem': certPem + above.join(''),
    },
    generation: g,
    notAfter: certificate.notAfter.toISOString(),
    fingerprint: await fingerprintOf(certificate),
  };
}

/** Removes a cluster's intermediates other than generation `keep` (the one its istiod now issues from). */
export async function retireClusterCas(
  entries: MeshEntries,
  cluster: string,
  keep: number,
  signal?: AbortSignal,
): Promise<number[]> {
  const newest = await currentGeneration(entries, cluster, signal);
  const names = await entries.list(signal);
  const retired: number[] = [];
  for (let g = 1; g <= newest; g++) {
    if (g === keep) continue;
    const e = clusterEntries(cluster, g);
    if (names.includes(e.cert) || names.includes(e.key)) {
      // The certificate first: an entry pair without it is no CA (see ensureCa).
      await entries.remove([e.cert], signal);
      await entries.remove([e.key], signal);
      retired.push(g);
    }
  }
  return retired;
}
