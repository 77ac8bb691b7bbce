// The mesh CAs match Istio's own tooling, checked with openssl: RSA 4096 / SHA-256 root
// (O=Istio, CN=Root CA), per-cluster intermediates (L=<cluster>, pathlen 0, SAN
// istiod.istio-system.svc) that chain to the root, cert-chain = intermediate then root.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { type ActivityDeps, createActivities } from '../src/activities/mesh-activities';
import { ensureClusterCa } from '../src/istio/trust';
import { parseMeshSpec } from '../src/spec/load';
import { scratchDir } from './helpers/env';

let dir: string;
let east: Awaited<ReturnType<typeof ensureClusterCa>>;
let west: Awaited<ReturnType<typeof ensureClusterCa>>;

const openssl = async (args: string[], input?: string) => (await execa('openssl', args, { input })).stdout;

beforeAll(async () => {
  dir = scratchDir('trust');
  [east, west] = await Promise.all([ensureClusterCa(dir, 'east'), ensureClusterCa(dir, 'west')]);
}, 120_000);

test('one root for every cluster, each intermediate chaining to it', async () => {
  expect(east['root-cert.pem']).toBe(west['root-cert.pem']);
  expect(east['ca-cert.pem']).not.toBe(west['ca-cert.pem']);
  const root = path.join(dir, 'root-cert.pem');
  for (const [name, files] of [['east', east], ['west', west]] as const) {
    const ca = path.join(dir, name, 'ca-cert.pem');
    expect(await openssl(['verify', '-CAfile', root, ca])).toBe(`${ca}: OK`);
    expect(files['cert-chain.pem']).toBe(files['ca-cert.pem'] + files['root-cert.pem']);
  }
});

test('the root is RSA 4096, SHA-256, O=Istio CN=Root CA, a CA for 10 years', async () => {
  const text = await openssl(['x509', '-noout', '-text'], east['root-cert.pem']);
  expect(text).toContain('Public-Key: (4096 bit)');
  expect(text).toContain('Signature Algorithm: sha256WithRSAEncryption');
  expect(await openssl(['x509', '-noout', '-subject', '-nameopt', 'RFC2253'], east['root-cert.pem'])).toBe('subject=CN=Root CA,O=Istio');
  expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE/);
  expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Non Repudiation, Key Encipherment, Certificate Sign/);
  expect(text).toContain('X509v3 Subject Key Identifier');
  const dates = await openssl(['x509', '-noout', '-startdate', '-enddate'], east['root-cert.pem']);
  const [nb, na] = dates.split('\n').map((l) => Date.parse(l.split('=')[1]));
  expect(Math.round((na - nb) / 86_400_000)).toBe(3650);
});

test('an intermediate is RSA 4096, L=<cluster>, pathlen 0, SAN istiod.istio-system.svc', async () => {
  const text = await openssl(['x509', '-noout', '-text'], west['ca-cert.pem']);
  expect(text).toContain('Public-Key: (4096 bit)');
  expect(await openssl(['x509', '-noout', '-subject', '-nameopt', 'RFC2253'], west['ca-cert.pem'])).toBe('subject=L=west,CN=Intermediate CA,O=Istio');
  expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
  expect(text).toMatch(/X509v3 Subject Alternative Name:\s+DNS:istiod\.istio-system\.svc/);
  expect(text).toContain('X509v3 Authority Key Identifier');
  // The key in the secret is the intermediate's.
  const fromKey = await openssl(['pkey', '-pubout'], west['ca-key.pem']);
  const fromCert = await openssl(['x509', '-noout', '-pubkey'], west['ca-cert.pem']);
  expect(fromKey).toBe(fromCert);
});

test('CA files are private to their owner and reused on a second run', async () => {
  expect(fs.statSync(path.join(dir, 'root-key.pem')).mode & 0o077).toBe(0);
  expect(fs.statSync(path.join(dir, 'east', 'ca-key.pem')).mode & 0o077).toBe(0);
  const again = await ensureClusterCa(dir, 'east');
  expect(again).toEqual(east);
});

describe('a root the user brings (trust.rootCa)', () => {
  let own: string;
  const user = () => ({ certFile: path.join(own, 'root-cert.pem'), keyFile: path.join(own, 'root-key.pem') });
  const fingerprint = (pem: string) => openssl(['x509', '-noout', '-fingerprint', '-sha256'], pem);

  beforeAll(async () => {
    own = scratchDir('own-root');
    // The key in SEC1 form ("EC PRIVATE KEY"), as `openssl ecparam -genkey` writes it.
    await execa('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'root-key.pem'], { cwd: own });
    await execa('openssl', ['req', '-x509', '-new', '-key', 'root-key.pem', '-out', 'root-cert.pem', '-days', '30', '-subj', '/O=Acme/CN=Acme Mesh Root',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { cwd: own });
  });

  test('signs every intermediate; the root stays where the user keeps it and is not copied', async () => {
    const caDir = scratchDir('own-root-mesh');
    const files = await ensureClusterCa(caDir, 'east', user());
    const intermediate = path.join(caDir, 'east', 'ca-cert.pem');
    expect(await openssl(['verify', '-CAfile', user().certFile, intermediate])).toBe(`${intermediate}: OK`);
    expect(await fingerprint(files['root-cert.pem'])).toBe(await fingerprint(fs.readFileSync(user().certFile, 'utf8')));
    expect(files['cert-chain.pem']).toBe(files['ca-cert.pem'] + files['root-cert.pem']);
    expect(await openssl(['x509', '-noout', '-issuer', '-nameopt', 'RFC2253'], files['ca-cert.pem'])).toBe('issuer=CN=Acme Mesh Root,O=Acme');
    expect(fs.readdirSync(caDir).sort()).toEqual(['east']);
  });

  test('an intermediate of the user\'s PKI signs, with chainFile up to their root: root-cert is the true root', async () => {
    const pki = scratchDir('org-pki');
    const run = (args: string[]) => execa('openssl', args, { cwd: pki });
    fs.writeFileSync(path.join(pki, 'ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
    await run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'org-root.key', '-out', 'org-root.pem', '-days', '30', '-subj', '/O=Acme/CN=Acme Root',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    await run(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'org-int.key', '-out', 'org-int.csr', '-subj', '/O=Acme/CN=Acme Mesh Intermediate']);
    await run(['x509', '-req', '-in', 'org-int.csr', '-CA', 'org-root.pem', '-CAkey', 'org-root.key', '-CAcreateserial', '-out', 'org-int.pem', '-days', '30', '-extfile', 'ca.ext']);
    const caDir = scratchDir('org-mesh');
    const files = await ensureClusterCa(caDir, 'east', { certFile: path.join(pki, 'org-int.pem'), keyFile: path.join(pki, 'org-int.key'), chainFile: path.join(pki, 'org-root.pem') });
    const clusterCa = path.join(caDir, 'east', 'ca-cert.pem');
    expect(await openssl(['verify', '-CAfile', path.join(pki, 'org-root.pem'), '-untrusted', path.join(pki, 'org-int.pem'), clusterCa])).toBe(`${clusterCa}: OK`);
    expect(await fingerprint(files['root-cert.pem'])).toBe(await fingerprint(fs.readFileSync(path.join(pki, 'org-root.pem'), 'utf8')));
    const chain = files['cert-chain.pem'].match(/-----BEGIN CERTIFICATE-----/g);
    expect(chain).toHaveLength(3); // cluster intermediate, Acme's intermediate, Acme's root
    // A chain that does not lead from certFile to a root is refused.
    await expect(ensureClusterCa(scratchDir('org-bad'), 'east', { certFile: path.join(pki, 'org-int.pem'), keyFile: path.join(pki, 'org-int.key'), chainFile: user().certFile }))
      .rejects.toThrow(/trust\.rootCa\.chainFile: .* has no certificate that signed ".*Acme Mesh Intermediate/);
  });

  test.each([
    ['a key that is not the certificate\'s', async () => {
      await execa('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'other-key.pem'], { cwd: own });
      return { ...user(), keyFile: path.join(own, 'other-key.pem') };
    }, /trust\.rootCa\.keyFile: .* is not the key of /],
    ['a certificate that is no CA', async () => {
      await execa('openssl', ['req', '-x509', '-new', '-key', 'root-key.pem', '-out', 'leaf.pem', '-days', '30', '-subj', '/CN=leaf', '-addext', 'basicConstraints=critical,CA:FALSE'], { cwd: own });
      return { ...user(), certFile: path.join(own, 'leaf.pem') };
    }, /trust\.rootCa\.certFile: .* is not a CA certificate/],
    ['an encrypted key', async () => {
      await execa('openssl', ['pkey', '-in', 'root-key.pem', '-aes256', '-passout', 'pass:secret', '-out', 'locked-key.pem'], { cwd: own });
      return { ...user(), keyFile: path.join(own, 'locked-key.pem') };
    }, /trust\.rootCa\.keyFile: .* is not an unencrypted PEM/],
    ['a missing file', async () => ({ ...user(), certFile: path.join(own, 'nope.pem') }), /trust\.rootCa\.certFile: cannot read .*nope\.pem/],
  ])('refuses %s, naming the field', async (_what, make, message) => {
    const caDir = scratchDir('own-root-bad');
    await expect(ensureClusterCa(caDir, 'east', await make())).rejects.toThrow(message);
  });
});

test('a root-ca step scheduled by an earlier build (its spec has no trust section) still makes the CAs', async () => {
  const spec = parseMeshSpec('apiVersion: meshflow.dev/v1alpha1\nkind: Mesh\nname: old\nclusters:\n  - { name: east, provider: local, network: n1 }\n');
  const recorded: Partial<typeof spec> = { ...spec };
  delete recorded.trust;
  const stateDir = scratchDir('old-spec');
  const activities = createActivities({ stateDir, providers: {} as ActivityDeps['providers'], istioctl: 'not used by this step' });
  const out = await activities.createRootCa({ mesh: 'old', spec: recorded as typeof spec, step: { id: 'root-ca', kind: 'root-ca' } });
  expect(out.outputs?.root).toBe('generated by meshflow');
  const dir = path.join(stateDir, 'meshes', 'old', 'ca');
  expect(['root-cert.pem', 'root-key.pem', 'east/ca-cert.pem', 'east/ca-key.pem'].filter((f) => !fs.existsSync(path.join(dir, f)))).toEqual([]);
});
