// The mesh's shared trust, made the way Istio's tools/certs does it: one root CA (10 years,
// O=Istio, CN=Root CA) and per cluster an intermediate CA (L=<cluster>, pathlen 0, SAN
// istiod.istio-system.svc), with the spec's key type (trust.keyAlgorithm): ECDSA P-256 or, as
// tools/certs does, RSA 4096; signed with SHA-256. A user may bring their own root (files they
// keep; meshflow reads them, never copies or deletes them). Keys stay in the state directory
// (mode 0600) and in each cluster's `cacerts` secret; they never travel through workflow history.
import { createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PermanentError } from '../adapters/providers';
import type { CaKeyAlgorithm } from '../spec/schema';
import { withLock } from '../util/lock';
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

export interface CacertsFiles {
  'ca-cert.pem': string;
  'ca-key.pem': string;
  'root-cert.pem': string;
  'cert-chain.pem': string;
}

/** A root CA the user keeps, by file reference (spec `trust.rootCa`). */
export interface UserRoot {
  certFile: string;
  keyFile: string;
  /** When certFile is an intermediate of the user's PKI: the certificates above it, up to the self-signed root. */
  chainFile?: string;
}

/** The spec's `trust`: whose root, and the key type of the CAs meshflow makes. */
export interface TrustSettings {
  rootCa?: UserRoot;
  keyAlgorithm: CaKeyAlgorithm;
}

/** The CA that signs the clusters' intermediates, and the certificates above it (empty when it is the root). */
export interface MeshRoot extends Issued {
  chain: x509.X509Certificate[];
}

export function caDir(stateDir: string, mesh: string): string {
  return path.join(stateDir, 'meshes', mesh, 'ca');
}

/** A CA meshflow made earlier (whatever its key type: a CA is reused as it was made). */
async function loadIssued(certFile: string, keyFile: string): Promise<Issued> {
  const certificate = new x509.X509Certificate(fs.readFileSync(certFile, 'utf8'));
  const algorithm = keyAlgorithmOf(certificate);
  if (!algorithm) throw new PermanentError(`${certFile} has a key type meshflow does not sign with`);
  const key: KeyPair = await importKeyPair(algorithm, fs.readFileSync(keyFile, 'utf8'), certificate);
  return { certificate, key };
}

function writeAtomically(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, content, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** The mesh root CA: made once, reused on retry (the key is written before the certificate that marks it complete). */
export async function ensureRootCa(dir: string, algorithm: CaKeyAlgorithm): Promise<Issued> {
  const certFile = path.join(dir, 'root-cert.pem');
  const keyFile = path.join(dir, 'root-key.pem');
  if (fs.existsSync(certFile) && fs.existsSync(keyFile)) return loadIssued(certFile, keyFile);
  // Callers in this process share one making of the root; the lock keeps other processes out.
  const pending = makingRoots.get(dir);
  if (pending) return pending;
  const making = (async () => {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Two callers making the root at once would each sign intermediates with their own.
    return withLock(path.join(dir, 'root'), async () => {
      if (fs.existsSync(certFile) && fs.existsSync(keyFile)) return loadIssued(certFile, keyFile);
      const key = await generateKeyPair(algorithm);
      const certificate = await issue(
        { subject: 'O=Istio, CN=Root CA', days: DAYS, ca: {}, keyUsages: CA_USAGES },
        key,
      );
      writeAtomically(keyFile, await privateKeyPem(key));
      writeAtomically(certFile, certificatePem(certificate));
      return { certificate, key };
    });
  })().finally(() => makingRoots.delete(dir));
  makingRoots.set(dir, making);
  return making;
}

/** Roots being made in this process, by directory. */
const makingRoots = new Map<string, Promise<Issued>>();

/** The user's root CA, checked: a CA certificate, valid, allowed to sign intermediates, with its key. */
export async function loadUserRoot(user: UserRoot): Promise<MeshRoot> {
  const read = (field: 'certFile' | 'keyFile' | 'chainFile') => {
    try {
      return fs.readFileSync(user[field]!, 'utf8');
    } catch (err) {
      throw new PermanentError(`trust.rootCa.${field}: cannot read ${user[field]}: ${(err as Error).message}`);
    }
  };
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(read('certFile'));
  } catch (err) {
    if (err instanceof PermanentError) throw err;
    throw new PermanentError(`trust.rootCa.certFile: ${user.certFile} is not a PEM certificate`);
  }
  const bad = (why: string) => new PermanentError(`trust.rootCa.certFile: ${user.certFile} ${why}`);
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
  const keyPem = read('keyFile');
  let key: KeyPair;
  try {
    // PKCS#1 ("RSA PRIVATE KEY"), SEC1 ("EC PRIVATE KEY") or PKCS#8: WebCrypto takes only the last.
    const pkcs8 = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'pem' }).toString();
    key = await importKeyPair(algorithm, pkcs8, certificate);
  } catch {
    throw new PermanentError(
      `trust.rootCa.keyFile: ${user.keyFile} is not an unencrypted PEM ${algorithm} private key ` +
        '(decrypt it with `openssl pkey -in KEY -out PLAIN`)',
    );
  }
  if (!(await keysMatch(key))) {
    throw new PermanentError(`trust.rootCa.keyFile: ${user.keyFile} is not the key of ${user.certFile}`);
  }
  const chain = user.chainFile ? await loadChain(certificate, user.chainFile, read('chainFile')) : [];
  return { certificate, key, chain };
}

/** The certificates of chainFile, ordered from the one that signed `signer` up to a self-signed root. */
async function loadChain(signer: x509.X509Certificate, file: string, pem: string): Promise<x509.X509Certificate[]> {
  let certs: x509.X509Certificate[];
  try {
    certs = x509.PemConverter.decode(pem).map((der) => new x509.X509Certificate(der));
  } catch {
    throw new PermanentError(`trust.rootCa.chainFile: ${file} is not a PEM bundle of certificates`);
  }
  const chain: x509.X509Certificate[] = [];
  for (let child = signer; !(await child.isSelfSigned());) {
    const parent = certs.find((c) => c.subject === child.issuer && !chain.includes(c));
    if (!parent || !(await child.verify({ publicKey: parent.publicKey, signatureOnly: true }))) {
      throw new PermanentError(
        `trust.rootCa.chainFile: ${file} has no certificate that signed "${child.subject}": ` +
          'it must hold every CA certificate above certFile, up to the root',
      );
    }
    chain.push(parent);
    child = parent;
  }
  return chain;
}

/** The mesh's root: the user's when the spec names one, else the one meshflow keeps in `dir`. */
export async function meshRoot(dir: string, trust: TrustSettings): Promise<MeshRoot> {
  return trust.rootCa ? loadUserRoot(trust.rootCa) : { ...(await ensureRootCa(dir, trust.keyAlgorithm)), chain: [] };
}

/**
 * The root and every cluster's intermediate, all keys generated at once (asynchronously, on
 * libuv's threads: RSA 4096 keys take seconds each, and no intermediate waits for the root's key).
 */
export async function ensureMeshCas(dir: string, clusters: string[], trust: TrustSettings): Promise<MeshRoot> {
  const [root] = await Promise.all([meshRoot(dir, trust), ...clusters.map((c) => ensureClusterCa(dir, c, trust))]);
  return root;
}

/** A cluster's intermediate CA and the four files of its `cacerts` secret. */
export async function ensureClusterCa(dir: string, cluster: string, trust: TrustSettings): Promise<CacertsFiles> {
  const rootReady = meshRoot(dir, trust);
  rootReady.catch(() => undefined); // awaited below; meanwhile a refusal must not go unhandled
  // The user's root is read and checked (milliseconds) before anything is written.
  if (trust.rootCa) await rootReady;
  const cdir = path.join(dir, cluster);
  const certFile = path.join(cdir, 'ca-cert.pem');
  const keyFile = path.join(cdir, 'ca-key.pem');
  fs.mkdirSync(cdir, { recursive: true, mode: 0o700 });
  await withLock(path.join(cdir, 'ca'), async () => {
    if (fs.existsSync(certFile) && fs.existsSync(keyFile)) return;
    // This key is made while meshflow's own root is (the root is needed only to sign).
    const [root, key] = await Promise.all([rootReady, generateKeyPair(trust.keyAlgorithm)]);
    const certificate = await issue(
      {
        subject: `O=Istio, CN=Intermediate CA, L=${cluster}`,
        days: DAYS,
        ca: { pathLength: 0 },
        keyUsages: CA_USAGES,
        dnsNames: ['istiod.istio-system.svc'],
      },
      key,
      root,
    );
    writeAtomically(keyFile, await privateKeyPem(key));
    writeAtomically(certFile, certificatePem(certificate));
  });
  const root = await rootReady;
  const caCert = fs.readFileSync(certFile, 'utf8');
  // cert-chain: the cluster's intermediate, then every CA above it up to the root (Istio's order).
  const above = [root.certificate, ...root.chain].map(certificatePem);
  return {
    'ca-cert.pem': caCert,
    'ca-key.pem': fs.readFileSync(keyFile, 'utf8'),
    'root-cert.pem': above[above.length - 1],
    'cert-chain.pem': caCert + above.join(''),
  };
}
