// The verifier behind the `trust-chain` check, on real X.509 (no cluster): a workload chain as
// istiod's CA returns it verifies up to the mesh root, and every way it can fail names the link
// that breaks: another root (even one named like the mesh's), an expired intermediate, a signer
// that is no CA or exceeds its path length, a missing link. openssl gives the same verdict on each.
// Then the SPIFFE identity, and which service account and trust domain the check asks for.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { probeServiceAccount, trustDomainOf } from '../src/checks/trust-chain';
import { meshRootCertificate } from '../src/istio/trust';
import { type Issued, certificatePem, generateKeyPair, issue, x509 } from '../src/pki/certs';
import { certificatesOf, parseSpiffeId, spiffeId, uriSans, verifyChain } from '../src/pki/chain';
import { parseMeshSpec } from '../src/spec/load';
import type { MeshEntries } from '../src/trust-store/store';
import { scratchDir } from './helpers/env';

const KU = x509.KeyUsageFlags;
const CA_USAGES = KU.keyCertSign | KU.digitalSignature;

async function ca(subject: string, parent?: Issued, opts: { days?: number; pathLength?: number } = {}) {
  const key = await generateKeyPair('ecdsa-p256');
  const certificate = await issue(
    { subject, days: opts.days ?? 30, ca: { pathLength: opts.pathLength }, keyUsages: CA_USAGES },
    key,
    parent,
  );
  return { certificate, key };
}

/** A workload certificate as istiod issues it: no subject, its SPIFFE identity as the only SAN. */
async function workload(issuer: Issued, uri: string, notAfter = new Date(Date.now() + 600_000)): Promise<string> {
  const key = await generateKeyPair('ecdsa-p256');
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '01',
    subject: '',
    issuer: issuer.certificate.subjectName,
    notBefore: new Date(Date.now() - 60_000),
    notAfter,
    publicKey: key.keys.publicKey,
    signingKey: issuer.key.keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(KU.digitalSignature | KU.keyEncipherment, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }], true),
    ],
  });
  return certificatePem(cert);
}

const pem = (i: Issued) => certificatePem(i.certificate);
const ID = spiffeId('cluster.local', 'sample', 'curl');

/** openssl's verdict on the same chain: leaf, the rest as untrusted, only `root` trusted. */
async function opensslVerifies(chain: string[], root: string): Promise<boolean> {
  const dir = scratchDir('trust-chain-openssl');
  const [leaf, ...rest] = chain;
  fs.writeFileSync(path.join(dir, 'leaf.pem'), leaf);
  fs.writeFileSync(path.join(dir, 'untrusted.pem'), rest.join('') || leaf);
  fs.writeFileSync(path.join(dir, 'root.pem'), root);
  const r = await execa('openssl', ['verify', '-CAfile', 'root.pem', '-untrusted', 'untrusted.pem', 'leaf.pem'], {
    cwd: dir,
    reject: false,
  });
  return r.exitCode === 0;
}

let root: Issued;
let intermediate: Issued;

beforeAll(async () => {
  root = await ca('O=Istio, CN=Root CA');
  intermediate = await ca('O=Istio, CN=Intermediate CA, L=cluster1', root, { pathLength: 0 });
});

test("istiod's answer (leaf, cert-chain, root bundle) verifies to the mesh root and names the workload", async () => {
  const chain = [await workload(intermediate, ID), pem(intermediate), pem(root), pem(root)];
  const v = verifyChain(chain, [pem(root)]);
  expect(v).toMatchObject({
    ok: true,
    path: ['""', '"O=Istio, CN=Intermediate CA, L=cluster1"', '"O=Istio, CN=Root CA"'],
  });
  expect(await opensslVerifies(chain, pem(root))).toBe(true);
  expect(uriSans(v.ok ? v.leaf : certificatesOf(chain)[0])).toEqual(['spiffe://cluster.local/ns/sample/sa/curl']);
  expect(parseSpiffeId(ID)).toEqual({ trustDomain: 'cluster.local', namespace: 'sample', serviceAccount: 'curl' });
  // The intermediate's order in the chain does not matter; a root bundle of several roots neither.
  const other = await ca('O=Acme, CN=Other Root');
  expect(verifyChain([chain[0], pem(other) + pem(root), pem(intermediate)], [pem(root)]).ok).toBe(true);
});

test('a chain from another root fails, even when that root is named like the mesh root', async () => {
  const stranger = await ca('O=Istio, CN=Root CA');
  const strangerIntermediate = await ca('O=Istio, CN=Intermediate CA, L=cluster1', stranger, { pathLength: 0 });
  const chain = [await workload(strangerIntermediate, ID), pem(strangerIntermediate), pem(stranger)];
  const v = verifyChain(chain, [pem(root)]);
  expect(v.ok).toBe(false);
  expect(!v.ok && v.reason).toMatch(
    /ends at the self-signed "O=Istio, CN=Root CA" \(SHA-256 [0-9A-F:]+\).*not the mesh root/,
  );
  expect(await opensslVerifies(chain, pem(root))).toBe(false);
  // Without the stranger's root in the chain: nothing known signed its intermediate.
  const short = verifyChain(chain.slice(0, 2), [pem(root)]);
  expect(!short.ok && short.reason).toMatch(/does not verify with the key of "O=Istio, CN=Root CA" \(same name/);
  // The mesh root sent inside the chain is not trusted for being there.
  expect(verifyChain(chain, [pem(stranger)]).ok).toBe(true);
  expect(verifyChain([await workload(intermediate, ID), pem(intermediate), pem(root)], [pem(stranger)]).ok).toBe(false);
});

test('an expired intermediate, an expired leaf and an expired root fail, naming which', async () => {
  const expired = await ca('O=Istio, CN=Intermediate CA, L=old', root, { days: 0, pathLength: 0 });
  const chain = [await workload(expired, ID), pem(expired), pem(root)];
  const v = verifyChain(chain, [pem(root)]);
  expect(!v.ok && v.reason).toMatch(/^"O=Istio, CN=Intermediate CA, L=old" expired on \d{4}-/);
  expect(await opensslVerifies(chain, pem(root))).toBe(false);

  const leaf = await workload(intermediate, ID, new Date(Date.now() - 1000));
  expect(verifyChain([leaf, pem(intermediate)], [pem(root)])).toMatchObject({ ok: false, reason: /^"" expired/ });

  const oldRoot = await ca('O=Istio, CN=Old Root', undefined, { days: 0 });
  const under = await ca('O=Istio, CN=Intermediate CA', oldRoot);
  const w = verifyChain([await workload(under, ID), pem(under)], [pem(oldRoot)]);
  expect(!w.ok && w.reason).toMatch(/"O=Istio, CN=Old Root" expired/);
});

test('a signer that is no CA, or below its path length, breaks the chain', async () => {
  const notCa = {
    key: await generateKeyPair('ecdsa-p256'),
    certificate: undefined as unknown as x509.X509Certificate,
  };
  notCa.certificate = await issue(
    { subject: 'O=Istio, CN=Not a CA', days: 30, keyUsages: KU.digitalSignature | KU.keyCertSign },
    notCa.key,
    root,
  );
  const v = verifyChain([await workload(notCa, ID), pem(notCa)], [pem(root)]);
  expect(!v.ok && v.reason).toMatch(/"O=Istio, CN=Not a CA" is not a CA/);
  expect(await opensslVerifies([await workload(notCa, ID), pem(notCa)], pem(root))).toBe(false);

  // The cluster's intermediate has pathlen 0: a CA under it may not sign.
  const nested = await ca('O=Istio, CN=Nested', intermediate);
  const chain = [await workload(nested, ID), pem(nested), pem(intermediate)];
  const n = verifyChain(chain, [pem(root)]);
  expect(!n.ok && n.reason).toMatch(/"O=Istio, CN=Intermediate CA, L=cluster1" has path length 0 but 1 CA/);
  expect(await opensslVerifies(chain, pem(root))).toBe(false);

  const missing = verifyChain([await workload(intermediate, ID)], [pem(root)]);
  expect(!missing.ok && missing.reason).toMatch(/nothing in the chain or the mesh root signed ""/);
});

test('the SPIFFE identity: a wrong trust domain or account is told apart, anything else is no identity', async () => {
  const leaf = await workload(intermediate, spiffeId('other.domain', 'sample', 'curl'));
  const v = verifyChain([leaf, pem(intermediate)], [pem(root)]);
  expect(v.ok).toBe(true);
  const sans = uriSans(certificatesOf([leaf])[0]);
  expect(sans).not.toContain(ID);
  expect(parseSpiffeId(sans[0])).toMatchObject({ trustDomain: 'other.domain' });
  expect(parseSpiffeId('spiffe://cluster.local/ns/sample')).toBeUndefined();
  expect(parseSpiffeId('https://example.com/ns/a/sa/b')).toBeUndefined();
});

test("the account asked: the sample's in each cluster, else istio-system's reader; the spec's trust domain", () => {
  const spec = parseMeshSpec(fs.readFileSync(path.join(__dirname, '..', 'examples', 'primary-remote.yaml'), 'utf8'));
  for (const c of ['cluster1', 'cluster2', 'cluster3']) {
    expect(probeServiceAccount(spec, c)).toEqual({ namespace: 'sample', name: 'curl' });
  }
  expect(trustDomainOf(spec)).toBe('cluster.local');
  const flat = { ...spec, app: { ...spec.app, sample: 'none' as const } };
  expect(probeServiceAccount(flat, 'cluster1')).toEqual({
    namespace: 'istio-system',
    name: 'istio-reader-service-account',
  });
  const own = { ...spec, istio: { ...spec.istio, values: { meshConfig: { trustDomain: 'acme.example' } } } };
  expect(trustDomainOf(own)).toBe('acme.example');
});

test("the mesh root, read without keys: meshflow's root, or the top of the user's chain", async () => {
  const store = new Map<string, string>();
  const entries: MeshEntries = {
    get: async (name) => store.get(name),
    putIfAbsent: async () => ({}),
    list: async () => [...store.keys()],
    remove: async () => undefined,
  };
  expect(await meshRootCertificate(entries, {})).toBeUndefined();
  store.set('root-cert.pem', pem(root));
  expect(await meshRootCertificate(entries, {})).toBe(pem(root));
  // A user's CA that is an intermediate of their PKI: the anchor is the self-signed top.
  const userCa = await ca('O=Acme, CN=Mesh CA', root);
  store.set('user-root/cert.pem', pem(userCa));
  store.set('user-root/chain.pem', pem(root));
  const anchor = await meshRootCertificate(entries, { rootCa: { stored: 'user-root', certFile: 'ca.pem' } });
  expect(certificatesOf([anchor!])[0].raw.equals(Buffer.from(root.certificate.rawData))).toBe(true);
  expect(await meshRootCertificate(entries, { rootCa: { cert: pem(userCa) } })).toContain('BEGIN CERTIFICATE');
});
