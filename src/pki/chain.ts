// Verifying a certificate chain up to trust anchors the caller chooses, link by link as a TLS peer
// would: each signature, each certificate's validity period, and that every issuer is a CA allowed
// to sign (basic constraints CA:true within its path length, key usage keyCertSign). A root that
// comes inside the chain is never trusted for being there: only an anchor ends a chain. And the
// SPIFFE identities (URI SANs) a workload certificate carries.
import { X509Certificate } from 'node:crypto';
import { x509 } from './certs';

export type ChainVerdict =
  { ok: true; leaf: X509Certificate; path: string[] } | { ok: false; reason: string; path: string[] };

const MAX_DEPTH = 8;

/** Every certificate of these PEM texts, in order (an element may hold several, as Istio's root bundle does). */
export function certificatesOf(pems: string[]): X509Certificate[] {
  return pems.flatMap((pem) => x509.PemConverter.decode(pem).map((der) => new X509Certificate(Buffer.from(der))));
}

// Node leaves the subject undefined when it is empty, as a workload certificate's is.
const dn = (name: string | undefined) => (name ?? '').replace(/\n/g, ', ');
const nameOf = (c: X509Certificate) => `"${dn(c.subject)}"`;

/** Why `c` is not valid at `now`, if it is not. */
function outsideValidity(c: X509Certificate, now: Date): string | undefined {
  const from = new Date(c.validFrom);
  const to = new Date(c.validTo);
  if (now < from) return `${nameOf(c)} is not valid before ${from.toISOString()}`;
  if (now > to) return `${nameOf(c)} expired on ${to.toISOString()}`;
  return undefined;
}

/** Why `issuer` may not sign a chain with `below` CA certificates under it, if it may not. */
function notACa(issuer: X509Certificate, below: number): string | undefined {
  const cert = new x509.X509Certificate(issuer.raw);
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  if (!basic?.ca) return `${nameOf(issuer)} is not a CA (basic constraints CA:false or absent)`;
  if (basic.pathLength !== undefined && below > basic.pathLength) {
    return `${nameOf(issuer)} has path length ${basic.pathLength} but ${below} CA certificate(s) below it`;
  }
  const usage = cert.getExtension(x509.KeyUsagesExtension);
  if (usage && !(usage.usages & x509.KeyUsageFlags.keyCertSign)) {
    return `${nameOf(issuer)} may not sign certificates (key usage lacks keyCertSign)`;
  }
  return undefined;
}

/**
 * Whether `pems` (leaf first, then what the signer sent along, in any order) chains up to one of
 * `anchors` at `now`. On failure, `reason` names the link that breaks and why; `path` is the
 * chain as far as it verified, leaf first.
 */
export function verifyChain(pems: string[], anchors: string[], now = new Date()): ChainVerdict {
  const certs = certificatesOf(pems);
  const roots = certificatesOf(anchors);
  if (!certs.length) return { ok: false, reason: 'the chain holds no certificate', path: [] };
  if (!roots.length) return { ok: false, reason: 'no trust anchor to verify against', path: [] };
  const leaf = certs[0];
  const path = [nameOf(leaf)];
  let current = leaf;
  for (let cas = 0; cas <= MAX_DEPTH; cas++) {
    const expired = outsideValidity(current, now);
    if (expired) return { ok: false, reason: expired, path };
    const anchor = roots.find((r) => r.raw.equals(current.raw));
    if (anchor && current !== leaf) return { ok: true, leaf, path };
    // An anchor first: a chain that carries its own copy of the root ends at the trusted one.
    const named = [...roots, ...certs.filter((c) => c !== current)].filter((c) => dn(c.subject) === dn(current.issuer));
    const signer = named.find((c) => current.checkIssued(c) && current.verify(c.publicKey));
    if (!signer) {
      if (current.checkIssued(current) && current.verify(current.publicKey)) {
        return {
          ok: false,
          reason:
            `the chain ends at the self-signed ${nameOf(current)} (SHA-256 ${current.fingerprint256.slice(0, 23)}), ` +
            'which is not the mesh root',
          path,
        };
      }
      return {
        ok: false,
        reason: named.length
          ? `the signature of ${nameOf(current)} does not verify with the key of ${nameOf(named[0])} ` +
            '(same name, another key)'
          : `nothing in the chain or the mesh root signed ${nameOf(current)} (issuer "${dn(current.issuer)}")`,
        path,
      };
    }
    const refused = notACa(signer, cas);
    if (refused) return { ok: false, reason: refused, path };
    path.push(nameOf(signer));
    if (roots.includes(signer)) {
      const rootExpired = outsideValidity(signer, now);
      return rootExpired ? { ok: false, reason: rootExpired, path } : { ok: true, leaf, path };
    }
    current = signer;
  }
  return { ok: false, reason: `the chain is longer than ${MAX_DEPTH} certificates`, path };
}

/** The URI SANs of a certificate (a workload's SPIFFE identity among them). */
export function uriSans(cert: X509Certificate): string[] {
  const san = new x509.X509Certificate(cert.raw).getExtension(x509.SubjectAlternativeNameExtension);
  return (san?.names.items ?? []).filter((n) => n.type === 'url').map((n) => n.value);
}

/** Istio's identity of a service account: `spiffe://<trust domain>/ns/<namespace>/sa/<name>`. */
export const spiffeId = (trustDomain: string, namespace: string, serviceAccount: string) =>
  `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;

/** The parts of an Istio SPIFFE identity, or undefined for anything else. */
export function parseSpiffeId(
  uri: string,
): { trustDomain: string; namespace: string; serviceAccount: string } | undefined {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(uri);
  return m ? { trustDomain: m[1], namespace: m[2], serviceAccount: m[3] } : undefined;
}
