// X.509 building blocks on @peculiar/x509 and Node's WebCrypto: key pairs, CAs and leaf
// certificates, PEM in and out. Used for local clusters' PKI and for the mesh's CAs.
// @peculiar/x509 resolves its ASN.1 helpers through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export type KeyAlgorithm = 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';

const rsa = (modulusLength: number): webcrypto.RsaHashedKeyGenParams => ({
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength,
});
const ALGORITHMS: Record<KeyAlgorithm, webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams> = {
  'ecdsa-p256': { name: 'ECDSA', namedCurve: 'P-256' },
  'ecdsa-p384': { name: 'ECDSA', namedCurve: 'P-384' },
  'rsa-2048': rsa(2048),
  'rsa-3072': rsa(3072),
  'rsa-4096': rsa(4096),
};

/** How a key of `alg` signs: ECDSA with SHA-256 (P-256) or SHA-384 (P-384); RSA keys carry SHA-256 in their key. */
function signingAlgorithm(alg: KeyAlgorithm): webcrypto.Algorithm | webcrypto.EcdsaParams {
  if (alg === 'ecdsa-p256') return { name: 'ECDSA', hash: 'SHA-256' };
  if (alg === 'ecdsa-p384') return { name: 'ECDSA', hash: 'SHA-384' };
  return { name: 'RSASSA-PKCS1-v1_5' };
}

/** The key algorithm of a certificate's public key, or undefined for one we do not sign with. */
export function keyAlgorithmOf(certificate: x509.X509Certificate): KeyAlgorithm | undefined {
  const alg = certificate.publicKey.algorithm as { name: string; namedCurve?: string; modulusLength?: number };
  if (alg.name === 'ECDSA') {
    return alg.namedCurve === 'P-256' ? 'ecdsa-p256' : alg.namedCurve === 'P-384' ? 'ecdsa-p384' : undefined;
  }
  if (alg.name === 'RSASSA-PKCS1-v1_5' || alg.name === 'RSA-PSS') {
    const sizes: Record<number, KeyAlgorithm> = { 2048: 'rsa-2048', 3072: 'rsa-3072', 4096: 'rsa-4096' };
    return sizes[alg.modulusLength ?? 0];
  }
  return undefined;
}

/** Whether `pair`'s private key is the one behind its public key (signs, and the public key verifies). */
export async function keysMatch(pair: KeyPair): Promise<boolean> {
  const data = webcrypto.getRandomValues(new Uint8Array(32));
  const sig = await webcrypto.subtle.sign(signingAlgorithm(pair.algorithm), pair.keys.privateKey, data);
  return webcrypto.subtle.verify(signingAlgorithm(pair.algorithm), pair.keys.publicKey, sig, data);
}

export interface KeyPair {
  algorithm: KeyAlgorithm;
  keys: webcrypto.CryptoKeyPair;
}

/**
 * A new key pair. Asynchronous: WebCrypto generates it on libuv's thread pool, so the event loop
 * stays free and several keys are made at once, one per core (RSA 4096: about a second or more
 * each, varying widely; ECDSA P-256: well under a millisecond).
 */
export async function generateKeyPair(algorithm: KeyAlgorithm): Promise<KeyPair> {
  const usages: webcrypto.KeyUsage[] = ['sign', 'verify'];
  const keys = (await webcrypto.subtle.generateKey(ALGORITHMS[algorithm], true, usages)) as webcrypto.CryptoKeyPair;
  return { algorithm, keys };
}

export async function privateKeyPem(pair: KeyPair): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', pair.keys.privateKey);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

export async function publicKeyPem(pair: KeyPair): Promise<string> {
  const der = await webcrypto.subtle.exportKey('spki', pair.keys.publicKey);
  return x509.PemConverter.encode(der, 'PUBLIC KEY');
}

export async function importKeyPair(
  algorithm: KeyAlgorithm,
  privatePem: string,
  certificate: x509.X509Certificate,
): Promise<KeyPair> {
  const der = x509.PemConverter.decodeFirst(privatePem);
  const privateKey = await webcrypto.subtle.importKey('pkcs8', der, ALGORITHMS[algorithm], true, ['sign']);
  const publicKey = await certificate.publicKey.export(ALGORITHMS[algorithm], ['verify']);
  return { algorithm, keys: { privateKey, publicKey } };
}

export interface CertificateRequest {
  /** Distinguished name, e.g. "CN=Root CA, O=Istio". */
  subject: string;
  /** Lifetime in days, counted from notBefore (five minutes back); or `validityMs`, counted from now. */
  days?: number;
  validityMs?: number;
  ca?: { pathLength?: number };
  keyUsages: x509.KeyUsageFlags;
  extendedKeyUsages?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
}

export interface Issued {
  certificate: x509.X509Certificate;
  key: KeyPair;
}

function serialNumber(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f; // positive
  return Buffer.from(bytes).toString('hex');
}

/** Issues a certificate for `key`, signed by `issuer` or self-signed when there is none. */
export async function issue(req: CertificateRequest, key: KeyPair, issuer?: Issued): Promise<x509.X509Certificate> {
  const notBefore = new Date(Date.now() - 5 * 60_000); // tolerate small clock skew between clusters
  const notAfter =
    req.validityMs !== undefined
      ? new Date(Date.now() + req.validityMs)
      : new Date(notBefore.getTime() + (req.days ?? 365) * 86_400_000);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(Boolean(req.ca), req.ca?.pathLength, true),
    new x509.KeyUsagesExtension(req.keyUsages, true),
    await x509.SubjectKeyIdentifierExtension.create(key.keys.publicKey),
  ];
  if (issuer) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuer.certificate));
  if (req.extendedKeyUsages?.length) extensions.push(new x509.ExtendedKeyUsageExtension(req.extendedKeyUsages));
  const names = [
    ...(req.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(req.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  if (names.length) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  const signer = issuer?.key ?? key;
  return x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: req.subject,
    // The issuer name as the issuer's certificate encodes it, byte for byte: Go (istiod) finds a
    // parent by the raw name, so a re-encoded one (PrintableString for UTF8String) breaks the chain.
    issuer: issuer ? issuer.certificate.subjectName : req.subject,
    notBefore,
    notAfter,
    publicKey: key.keys.publicKey,
    signingKey: signer.keys.privateKey,
    signingAlgorithm: signingAlgorithm(signer.algorithm),
    extensions,
  });
}

export function certificatePem(cert: x509.X509Certificate): string {
  return cert.toString('pem') + '\n';
}

export { x509 };
