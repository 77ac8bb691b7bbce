// The mesh's shared trust, made the way Istio's tools/certs does it: one root CA (RSA 4096,
// SHA-256, 10 years, O=Istio, CN=Root CA) and per cluster an intermediate CA (same key size,
// L=<cluster>, pathlen 0, SAN istiod.istio-system.svc). Keys stay in the state directory
// (mode 0600) and in each cluster's `cacerts` secret; they never travel through workflow history.
import fs from 'node:fs';
import path from 'node:path';
import { withLock } from '../util/lock';
import { type Issued, type KeyPair, certificatePem, generateKeyPair, importKeyPair, issue, privateKeyPem, x509 } from '../pki/certs';

const KU = x509.KeyUsageFlags;
const CA_USAGES = KU.digitalSignature | KU.nonRepudiation | KU.keyEncipherment | KU.keyCertSign;
const DAYS = 3650;

export interface CacertsFiles {
  'ca-cert.pem': string;
  'ca-key.pem': string;
  'root-cert.pem': string;
  'cert-chain.pem': string;
}

export function caDir(stateDir: string, mesh: string): string {
  return path.join(stateDir, 'meshes', mesh, 'ca');
}

async function loadIssued(certFile: string, keyFile: string): Promise<Issued> {
  const certificate = new x509.X509Certificate(fs.readFileSync(certFile, 'utf8'));
  const key: KeyPair = await importKeyPair('rsa-4096', fs.readFileSync(keyFile, 'utf8'), certificate);
  return { certificate, key };
}

function writeAtomically(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, content, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** The mesh root CA: made once, reused on retry (the key is written before the certificate that marks it complete). */
export async function ensureRootCa(dir: string): Promise<Issued> {
  const certFile = path.join(dir, 'root-cert.pem');
  const keyFile = path.join(dir, 'root-key.pem');
  if (fs.existsSync(certFile) && fs.existsSync(keyFile)) return loadIssued(certFile, keyFile);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Two callers making the root at once would each sign intermediates with their own.
  return withLock(path.join(dir, 'root'), async () => {
    if (fs.existsSync(certFile) && fs.existsSync(keyFile)) return loadIssued(certFile, keyFile);
    const key = await generateKeyPair('rsa-4096');
    const certificate = await issue({ subject: 'O=Istio, CN=Root CA', days: DAYS, ca: {}, keyUsages: CA_USAGES }, key);
    writeAtomically(keyFile, await privateKeyPem(key));
    writeAtomically(certFile, certificatePem(certificate));
    return { certificate, key };
  });
}

/** A cluster's intermediate CA and the four files of its `cacerts` secret. */
export async function ensureClusterCa(dir: string, cluster: string): Promise<CacertsFiles> {
  const root = await ensureRootCa(dir);
  const cdir = path.join(dir, cluster);
  const certFile = path.join(cdir, 'ca-cert.pem');
  const keyFile = path.join(cdir, 'ca-key.pem');
  fs.mkdirSync(cdir, { recursive: true, mode: 0o700 });
  await withLock(path.join(cdir, 'ca'), async () => {
    if (fs.existsSync(certFile) && fs.existsSync(keyFile)) return;
    const key = await generateKeyPair('rsa-4096');
    const certificate = await issue(
      { subject: `O=Istio, CN=Intermediate CA, L=${cluster}`, days: DAYS, ca: { pathLength: 0 }, keyUsages: CA_USAGES, dnsNames: ['istiod.istio-system.svc'] },
      key,
      root,
    );
    writeAtomically(keyFile, await privateKeyPem(key));
    writeAtomically(certFile, certificatePem(certificate));
  });
  const caCert = fs.readFileSync(certFile, 'utf8');
  const rootCert = certificatePem(root.certificate);
  return { 'ca-cert.pem': caCert, 'ca-key.pem': fs.readFileSync(keyFile, 'utf8'), 'root-cert.pem': rootCert, 'cert-chain.pem': caCert + rootCert };
}
