// A root CA given as PEM text in a spec (`trust.rootCa.cert`, `key`, `chain`), checked when the
// spec is read: each part must parse, and the key must be the certificate's. Problems name the
// field, never its content (the key is a secret; an error message may end up in a log).
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { x509 } from '../pki/certs';
import type { MeshSpec } from './schema';

export interface PemProblem {
  path: Array<string | number>;
  message: string;
}

const path = (field: string) => ['trust', 'rootCa', field];

export function inlineRootProblems(spec: MeshSpec): PemProblem[] {
  const root = spec.trust.rootCa;
  if (!root || root.cert === undefined || root.key === undefined) return [];
  const problems: PemProblem[] = [];
  let certificate: x509.X509Certificate | undefined;
  try {
    certificate = new x509.X509Certificate(root.cert);
  } catch {
    problems.push({ path: path('cert'), message: 'is not a PEM certificate ("-----BEGIN CERTIFICATE-----")' });
  }
  let spki: Buffer | undefined;
  try {
    spki = createPublicKey(createPrivateKey(root.key)).export({ type: 'spki', format: 'der' });
  } catch {
    problems.push({
      path: path('key'),
      message: 'is not an unencrypted PEM private key (PKCS#1, SEC1 or PKCS#8; decrypt it with `openssl pkey`)',
    });
  }
  if (certificate && spki && !spki.equals(Buffer.from(certificate.publicKey.rawData))) {
    problems.push({ path: path('key'), message: 'is not the key of the certificate in trust.rootCa.cert' });
  }
  if (root.chain !== undefined) {
    let count = 0;
    try {
      count = x509.PemConverter.decode(root.chain).map((der) => new x509.X509Certificate(der)).length;
    } catch {
      count = 0;
    }
    if (!count) problems.push({ path: path('chain'), message: 'is not a PEM bundle of certificates' });
  }
  return problems;
}
