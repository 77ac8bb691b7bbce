// The mesh CAs match Istio's own tooling, checked with openssl: a SHA-256 root (O=Istio, CN=Root
// CA) and per-cluster intermediates (L=<cluster>, pathlen 0, SAN istiod.istio-system.svc) that
// chain to it, cert-chain = intermediate then root; keys ECDSA P-256 (the default) or RSA 4096
// (Istio's tools/certs, on request: trust.keyAlgorithm), made off the event loop.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { type ActivityDeps, createActivities } from '../src/activities/mesh-activities';
import {
  type CacertsFiles,
  type TrustSettings,
  clusterCa,
  ensureClusterCa,
  ensureMeshCas,
  meshRootCertificate,
  retireUserRoots,
  userTrustedRoots,
} from '../src/istio/trust';
import { copyNewRoot } from '../src/trust-store/spec-files';
import { meshEntries } from '../src/trust-store/store';
import { DirectoryEntries, StateDirTrustStore } from '../src/trust-store/state-dir';
import { buildPlan, criticalPath } from '../src/plan/plan';
import { parseMeshSpec } from '../src/spec/load';
import type { CaKeyAlgorithm, MeshSpec } from '../src/spec/schema';
import { scratchDir } from './helpers/env';

const openssl = async (args: string[], input?: string) => (await execa('openssl', args, { input })).stdout;
const text = (pem: string) => openssl(['x509', '-noout', '-text'], pem);
const subject = (pem: string) => openssl(['x509', '-noout', '-subject', '-nameopt', 'RFC2253'], pem);
const issuer = (pem: string) => openssl(['x509', '-noout', '-issuer', '-nameopt', 'RFC2253'], pem);
const fingerprint = (pem: string) => openssl(['x509', '-noout', '-fingerprint', '-sha256'], pem);
/** Whether a PEM private key is the key of a PEM certificate. */
const keyMatches = async (keyPem: string, certPem: string) =>
  (await openssl(['pkey', '-pubout'], keyPem)) === (await openssl(['x509', '-noout', '-pubkey'], certPem));
const verify = (args: string[], cert: string) => openssl(['verify', ...args, cert]);
const read = (file: string) => fs.readFileSync(file, 'utf8');

/** What openssl says about a key of each algorithm, and about a signature made with one. */
const OPENSSL: Record<CaKeyAlgorithm, { key: RegExp; signature: string }> = {
  'ecdsa-p256': {
    key: /Public Key Algorithm: id-ecPublicKey\s+Public-Key: \(256 bit\)[\s\S]*NIST CURVE: P-256/,
    signature: 'ecdsa-with-SHA256',
  },
  'rsa-4096': {
    key: /Public Key Algorithm: rsaEncryption\s+Public-Key: \(4096 bit\)/,
    signature: 'sha256WithRSAEncryption',
  },
};
const CA_KEY_USAGE =
  /X509v3 Key Usage: critical\s+Digital Signature, Non Repudiation, Key Encipherment, Certificate Sign\n/;

interface MeshCas {
  dir: string;
  east: CacertsFiles;
  west: CacertsFiles;
  /** The longest time the event loop went without running a 10 ms timer while the keys were made. */
  longestStallMs: number;
}

async function makeCas(keyAlgorithm: CaKeyAlgorithm): Promise<MeshCas> {
  const dir = scratchDir(`trust-${keyAlgorithm}`);
  const trust: TrustSettings = { keyAlgorithm };
  let last = performance.now();
  let longestStallMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longestStallMs = Math.max(longestStallMs, now - last);
    last = now;
  }, 10);
  try {
    await ensureMeshCas(new DirectoryEntries(dir), ['east', 'west'], trust);
  } finally {
    clearInterval(timer);
  }
  // What each cacerts step reads: the files made above, reused.
  const [east, west] = await Promise.all([
    ensureClusterCa(new DirectoryEntries(dir), 'east', trust),
    ensureClusterCa(new DirectoryEntries(dir), 'west', trust),
  ]);
  return { dir, east, west, longestStallMs };
}

const meshes = {} as Record<CaKeyAlgorithm, MeshCas>;

beforeAll(async () => {
  // One after the other, so that the RSA keys' effect on the event loop is measured alone.
  meshes['ecdsa-p256'] = await makeCas('ecdsa-p256');
  meshes['rsa-4096'] = await makeCas('rsa-4096');
}, 180_000);

describe.each(['ecdsa-p256', 'rsa-4096'] as const)("meshflow's own CAs, %s keys", (keyAlgorithm) => {
  const expected = OPENSSL[keyAlgorithm];
  const mesh = () => meshes[keyAlgorithm];

  test('one root for every cluster, each intermediate chaining to it', async () => {
    const { dir, east, west } = mesh();
    expect(east['root-cert.pem']).toBe(west['root-cert.pem']);
    expect(east['ca-cert.pem']).not.toBe(west['ca-cert.pem']);
    const root = path.join(dir, 'root-cert.pem');
    expect(read(root)).toBe(east['root-cert.pem']);
    for (const [name, files] of [
      ['east', east],
      ['west', west],
    ] as const) {
      const ca = path.join(dir, name, 'ca-cert.pem');
      expect(await verify(['-CAfile', root], ca)).toBe(`${ca}: OK`);
      expect(files['cert-chain.pem']).toBe(files['ca-cert.pem'] + files['root-cert.pem']);
    }
  });

  test(`the root: ${keyAlgorithm}, ${expected.signature}, O=Istio CN=Root CA, a CA for 10 years`, async () => {
    const { dir, east } = mesh();
    const root = east['root-cert.pem'];
    const described = await text(root);
    expect(described).toMatch(expected.key);
    expect(described).toContain(`Signature Algorithm: ${expected.signature}`);
    expect(await subject(root)).toBe('subject=CN=Root CA,O=Istio');
    expect(described).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE\n/);
    expect(described).toMatch(CA_KEY_USAGE);
    expect(described).toContain('X509v3 Subject Key Identifier');
    const dates = await openssl(['x509', '-noout', '-startdate', '-enddate'], root);
    const [nb, na] = dates.split('\n').map((l) => Date.parse(l.split('=')[1]));
    expect(Math.round((na - nb) / 86_400_000)).toBe(3650);
    // The key kept in the state directory is the root's.
    expect(await keyMatches(read(path.join(dir, 'root-key.pem')), root)).toBe(true);
  });

  test(`an intermediate: ${keyAlgorithm}, L=<cluster>, pathlen 0, SAN istiod.istio-system.svc`, async () => {
    const { west } = mesh();
    const ca = west['ca-cert.pem'];
    const described = await text(ca);
    expect(described).toMatch(expected.key);
    expect(described).toContain(`Signature Algorithm: ${expected.signature}`);
    expect(await subject(ca)).toBe('subject=L=west,CN=Intermediate CA,O=Istio');
    expect(await issuer(ca)).toBe('issuer=CN=Root CA,O=Istio');
    expect(described).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0\n/);
    expect(described).toMatch(CA_KEY_USAGE);
    expect(described).toMatch(/X509v3 Subject Alternative Name:\s+DNS:istiod\.istio-system\.svc\n/);
    expect(described).toContain('X509v3 Subject Key Identifier');
    expect(described).toContain('X509v3 Authority Key Identifier');
    // The key in the secret is the intermediate's.
    expect(await keyMatches(west['ca-key.pem'], ca)).toBe(true);
  });

  test('CA files are private to their owner and reused on a second run', async () => {
    const { dir, east } = mesh();
    expect(fs.statSync(path.join(dir, 'root-key.pem')).mode & 0o077).toBe(0);
    expect(fs.statSync(path.join(dir, 'east', 'ca-key.pem')).mode & 0o077).toBe(0);
    expect(await ensureClusterCa(new DirectoryEntries(dir), 'east', { keyAlgorithm })).toEqual(east);
    // A CA is reused as it was made, whatever a later call asks for.
    const other = keyAlgorithm === 'rsa-4096' ? 'ecdsa-p256' : 'rsa-4096';
    expect(await ensureClusterCa(new DirectoryEntries(dir), 'east', { keyAlgorithm: other })).toEqual(east);
  });
});

test('RSA 4096 keys are made off the event loop: timers keep firing while three are generated', () => {
  expect(meshes['rsa-4096'].longestStallMs).toBeLessThan(1_000);
});

describe('a root the user brings (trust.rootCa)', () => {
  let own: string;
  const user = () => ({ certFile: path.join(own, 'root-cert.pem'), keyFile: path.join(own, 'root-key.pem') });
  const CA_EXT = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];

  const inOwn = (args: string[]) => execa('openssl', args, { cwd: own });

  beforeAll(async () => {
    own = scratchDir('own-root');
    // The key in SEC1 form ("EC PRIVATE KEY"), as `openssl ecparam -genkey` writes it.
    await inOwn(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'root-key.pem']);
    await inOwn([
      'req',
      '-x509',
      '-new',
      '-key',
      'root-key.pem',
      '-out',
      'root-cert.pem',
      '-days',
      '30',
      '-subj',
      '/O=Acme/CN=Acme Mesh Root',
      ...CA_EXT,
    ]);
  });

  test('signs every intermediate; the root stays where the user keeps it and is not copied', async () => {
    const caDir = scratchDir('own-root-mesh');
    const files = await ensureClusterCa(new DirectoryEntries(caDir), 'east', {
      rootCa: user(),
      keyAlgorithm: 'ecdsa-p256',
    });
    const intermediate = path.join(caDir, 'east', 'ca-cert.pem');
    expect(await verify(['-CAfile', user().certFile], intermediate)).toBe(`${intermediate}: OK`);
    expect(await fingerprint(files['root-cert.pem'])).toBe(await fingerprint(read(user().certFile)));
    expect(files['cert-chain.pem']).toBe(files['ca-cert.pem'] + files['root-cert.pem']);
    expect(await issuer(files['ca-cert.pem'])).toBe('issuer=CN=Acme Mesh Root,O=Acme');
    // Byte for byte, string types included: Go (istiod) finds the parent by the raw name, and a
    // PrintableString issuer under a UTF8String root is "signed by unknown authority" to it.
    const typed = (pem: string, which: '-issuer' | '-subject') =>
      execa('openssl', ['x509', '-noout', which, '-nameopt', 'RFC2253,show_type'], { input: pem }).then((r) =>
        r.stdout.replace(/^\w+=/, ''),
      );
    expect(await typed(files['ca-cert.pem'], '-issuer')).toBe(await typed(read(user().certFile), '-subject'));
    expect(await typed(read(user().certFile), '-subject')).toContain('UTF8STRING');
    const described = await text(files['ca-cert.pem']);
    expect(described).toMatch(OPENSSL['ecdsa-p256'].key);
    expect(described).toContain('Signature Algorithm: ecdsa-with-SHA256');
    expect(fs.readdirSync(caDir).sort()).toEqual(['east']);
  });

  test('with rsa-4096, the intermediates under an ECDSA root are RSA 4096, signed with ECDSA-SHA256', async () => {
    const caDir = scratchDir('own-root-rsa');
    const trust: TrustSettings = { rootCa: user(), keyAlgorithm: 'rsa-4096' };
    await ensureMeshCas(new DirectoryEntries(caDir), ['east'], trust);
    const files = await ensureClusterCa(new DirectoryEntries(caDir), 'east', trust);
    const intermediate = path.join(caDir, 'east', 'ca-cert.pem');
    expect(await verify(['-CAfile', user().certFile], intermediate)).toBe(`${intermediate}: OK`);
    const described = await text(files['ca-cert.pem']);
    expect(described).toMatch(OPENSSL['rsa-4096'].key);
    expect(described).toContain('Signature Algorithm: ecdsa-with-SHA256');
    expect(described).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0\n/);
    expect(await keyMatches(files['ca-key.pem'], files['ca-cert.pem'])).toBe(true);
    expect(fs.readdirSync(caDir).sort()).toEqual(['east']);
  }, 60_000);

  test('rotated to a new root the user gives: both trusted, intermediates from the new, then it alone', async () => {
    const store = new StateDirTrustStore(scratchDir('own-root-rotated'));
    const entries = meshEntries(store, 'rot');
    // As `up` copies the current root, `rotate root --root-cert --root-key` copies the new one.
    const old = { ...user(), ...(await copyNewRoot(store, 'rot', user())).newRoot };
    await inOwn(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'new-key.pem']);
    const newFiles = { certFile: path.join(own, 'new-cert.pem'), keyFile: path.join(own, 'new-key.pem') };
    const subj = ['-subj', '/O=Acme/CN=Acme Mesh Root 2'];
    await inOwn([
      'req',
      '-x509',
      '-new',
      '-key',
      'new-key.pem',
      '-out',
      'new-cert.pem',
      '-days',
      '30',
      ...subj,
      ...CA_EXT,
    ]);
    const certsIn = async (pem: string) =>
      Promise.all((pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map(fingerprint));
    const [oldPrint, newPrint] = [await fingerprint(read(old.certFile)), await fingerprint(read(newFiles.certFile))];
    const trustOld: TrustSettings = { rootCa: old, keyAlgorithm: 'ecdsa-p256' };
    const first = await clusterCa(entries, 'east', trustOld);
    expect(await certsIn(first.files['root-cert.pem'])).toEqual([oldPrint]);

    // A key that is not the certificate's: named by its flag and file, never quoted.
    const wrong = await copyNewRoot(store, 'rot', { ...newFiles, keyFile: old.keyFile }).catch((e: Error) => e);
    expect((wrong as Error).message).toBe(
      `--root-key ${old.keyFile} is not the key of --root-cert ${newFiles.certFile}`,
    );
    const next = (await copyNewRoot(store, 'rot', newFiles)).newRoot;

    // Trusting: every bundle holds both; the intermediate in place still chains to the old root.
    const trusting = await clusterCa(entries, 'east', trustOld);
    expect(trusting.generation).toBe(1);
    expect((await certsIn(trusting.files['root-cert.pem'])).sort()).toEqual([oldPrint, newPrint].sort());
    expect(await certsIn(trusting.files['cert-chain.pem'])).toHaveLength(2);
    expect((await certsIn(trusting.files['cert-chain.pem']))[1]).toBe(oldPrint);
    expect((await userTrustedRoots(entries, old)).length).toBe(2);

    // Switched: the spec's root is the new one; the next intermediate is its, the bundle still holds both.
    const trustNew: TrustSettings = { rootCa: next, keyAlgorithm: 'ecdsa-p256' };
    const switched = await clusterCa(entries, 'east', trustNew, 2);
    const dir = scratchDir('own-root-rotated-files');
    const put = (name: string, pem: string) => (fs.writeFileSync(path.join(dir, name), pem), path.join(dir, name));
    const caFile = put('ca-cert.pem', switched.files['ca-cert.pem']);
    expect(await verify(['-CAfile', newFiles.certFile], caFile)).toBe(`${caFile}: OK`);
    await expect(verify(['-CAfile', old.certFile], caFile)).rejects.toThrow();
    expect(await verify(['-CAfile', put('bundle.pem', switched.files['root-cert.pem'])], caFile)).toBe(`${caFile}: OK`);
    expect((await certsIn(switched.files['cert-chain.pem']))[1]).toBe(newPrint);
    expect((await certsIn(switched.files['root-cert.pem'])).sort()).toEqual([oldPrint, newPrint].sort());
    // The previous intermediate (put back should the new one not be taken up) still chains to the old root.
    const previous = await clusterCa(entries, 'east', trustNew, 1);
    expect((await certsIn(previous.files['cert-chain.pem']))[1]).toBe(oldPrint);
    expect((await certsIn((await meshRootCertificate(entries, trustNew))!)).sort()).toEqual(
      [oldPrint, newPrint].sort(),
    );

    // Finished: the old root leaves the store, and so every bundle and the trust-chain check's anchor.
    expect(await retireUserRoots(entries, next)).toEqual([old.stored]);
    const after = await clusterCa(entries, 'east', trustNew);
    expect(after.generation).toBe(2);
    expect(await certsIn(after.files['root-cert.pem'])).toEqual([newPrint]);
    expect(await certsIn((await meshRootCertificate(entries, trustNew))!)).toEqual([newPrint]);
    expect(await verify(['-CAfile', put('after.pem', after.files['root-cert.pem'])], caFile)).toBe(`${caFile}: OK`);
    expect(await userTrustedRoots(entries, next)).toHaveLength(1);
    expect((await store.list('rot')).filter((e) => e.startsWith(old.stored!))).toEqual([]);
  });

  test("an intermediate of the user's PKI signs, with chainFile up to their root: root-cert is it", async () => {
    const pki = scratchDir('org-pki');
    const run = (args: string[]) => execa('openssl', args, { cwd: pki });
    const ext = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign', ''];
    fs.writeFileSync(path.join(pki, 'ca.ext'), ext.join('\n'));
    await run([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'org-root.key',
      '-out',
      'org-root.pem',
      '-days',
      '30',
      '-subj',
      '/O=Acme/CN=Acme Root',
      ...CA_EXT,
    ]);
    await run([
      'req',
      '-new',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'org-int.key',
      '-out',
      'org-int.csr',
      '-subj',
      '/O=Acme/CN=Acme Mesh Intermediate',
    ]);
    await run([
      'x509',
      '-req',
      '-in',
      'org-int.csr',
      '-CA',
      'org-root.pem',
      '-CAkey',
      'org-root.key',
      '-CAcreateserial',
      '-out',
      'org-int.pem',
      '-days',
      '30',
      '-extfile',
      'ca.ext',
    ]);
    const caDir = scratchDir('org-mesh');
    const at = (f: string) => path.join(pki, f);
    const rootCa = { certFile: at('org-int.pem'), keyFile: at('org-int.key'), chainFile: at('org-root.pem') };
    const files = await ensureClusterCa(new DirectoryEntries(caDir), 'east', { rootCa, keyAlgorithm: 'ecdsa-p256' });
    const clusterCa = path.join(caDir, 'east', 'ca-cert.pem');
    const verified = await verify(['-CAfile', at('org-root.pem'), '-untrusted', at('org-int.pem')], clusterCa);
    expect(verified).toBe(`${clusterCa}: OK`);
    expect(await fingerprint(files['root-cert.pem'])).toBe(await fingerprint(read(at('org-root.pem'))));
    const chain = files['cert-chain.pem'].match(/-----BEGIN CERTIFICATE-----/g);
    expect(chain).toHaveLength(3); // cluster intermediate, Acme's intermediate, Acme's root
    // A P-256 intermediate under an RSA signer: the signature is the signer's kind.
    const described = await text(files['ca-cert.pem']);
    expect(described).toMatch(OPENSSL['ecdsa-p256'].key);
    expect(described).toContain('Signature Algorithm: sha256WithRSAEncryption');
    // A chain that does not lead from certFile to a root is refused.
    const badChain = { ...rootCa, chainFile: user().certFile };
    await expect(
      ensureClusterCa(new DirectoryEntries(scratchDir('org-bad')), 'east', {
        rootCa: badChain,
        keyAlgorithm: 'ecdsa-p256',
      }),
    ).rejects.toThrow(/trust\.rootCa\.chainFile: .* has no certificate that signed ".*Acme Mesh Intermediate/);
  });

  test.each([
    [
      "a key that is not the certificate's",
      async () => {
        await inOwn(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'other-key.pem']);
        return { ...user(), keyFile: path.join(own, 'other-key.pem') };
      },
      /trust\.rootCa\.keyFile: .* is not the key of /,
    ],
    [
      'a certificate that is no CA',
      async () => {
        await inOwn([
          'req',
          '-x509',
          '-new',
          '-key',
          'root-key.pem',
          '-out',
          'leaf.pem',
          '-days',
          '30',
          '-subj',
          '/CN=leaf',
          '-addext',
          'basicConstraints=critical,CA:FALSE',
        ]);
        return { ...user(), certFile: path.join(own, 'leaf.pem') };
      },
      /trust\.rootCa\.certFile: .* is not a CA certificate/,
    ],
    [
      'an encrypted key',
      async () => {
        await inOwn(['pkey', '-in', 'root-key.pem', '-aes256', '-passout', 'pass:secret', '-out', 'locked-key.pem']);
        return { ...user(), keyFile: path.join(own, 'locked-key.pem') };
      },
      /trust\.rootCa\.keyFile: .* is not an unencrypted PEM/,
    ],
    [
      'a missing file',
      async () => ({ ...user(), certFile: path.join(own, 'nope.pem') }),
      /trust\.rootCa\.certFile: cannot read .*nope\.pem/,
    ],
  ])('refuses %s, naming the field, and writes nothing', async (_what, make, message) => {
    const caDir = scratchDir('own-root-bad');
    const rootCa = await make();
    await expect(
      ensureClusterCa(new DirectoryEntries(caDir), 'east', { rootCa, keyAlgorithm: 'ecdsa-p256' }),
    ).rejects.toThrow(message);
    await expect(
      ensureMeshCas(new DirectoryEntries(caDir), ['east', 'west'], { rootCa, keyAlgorithm: 'rsa-4096' }),
    ).rejects.toThrow(message);
    expect(fs.readdirSync(caDir)).toEqual([]);
  });
});

describe('the root-ca step', () => {
  const yaml = (clusters: number, extra = '') =>
    'apiVersion: meshflow.dev/v1alpha1\nkind: Mesh\nname: keys\nclusters:\n' +
    Array.from(
      { length: clusters },
      (_, i) => `  - { name: ${i ? `c${i}` : 'east'}, provider: local, network: n${i} }`,
    ).join('\n') +
    '\n' +
    extra;
  const RSA = 'trust: { keyAlgorithm: rsa-4096 }\n';

  const run = async (spec: MeshSpec) => {
    const stateDir = scratchDir('root-ca-step');
    const deps: ActivityDeps = {
      stateDir,
      providers: {} as ActivityDeps['providers'],
      istio: () => Promise.reject(new Error('no Istio build is used by this step')),
      trustStore: new StateDirTrustStore(stateDir),
    };
    const step = { id: 'root-ca', kind: 'root-ca' } as const;
    const out = await createActivities(deps).createRootCa({ mesh: spec.name, spec, step });
    const at = (f: string) => path.join(stateDir, 'meshes', spec.name, 'ca', f);
    const files = ['root-cert.pem', 'root-key.pem', 'east/ca-cert.pem', 'east/ca-key.pem'];
    expect(files.filter((f) => !fs.existsSync(at(f)))).toEqual([]);
    return { out, root: await text(read(at('root-cert.pem'))), east: await text(read(at('east/ca-cert.pem'))) };
  };

  test('a new spec gets ECDSA P-256 keys', async () => {
    const spec = parseMeshSpec(yaml(1));
    expect(spec.trust.keyAlgorithm).toBe('ecdsa-p256');
    const { out, root, east } = await run(spec);
    expect(out.outputs?.root).toBe('generated by meshflow');
    expect(root).toMatch(OPENSSL['ecdsa-p256'].key);
    expect(east).toMatch(OPENSSL['ecdsa-p256'].key);
    expect(east).toContain('Signature Algorithm: ecdsa-with-SHA256');
  });

  test('trust.keyAlgorithm: rsa-4096 gets RSA 4096 keys', async () => {
    const { root, east } = await run(parseMeshSpec(yaml(1, RSA)));
    expect(root).toMatch(OPENSSL['rsa-4096'].key);
    expect(east).toMatch(OPENSSL['rsa-4096'].key);
    expect(east).toContain('Signature Algorithm: sha256WithRSAEncryption');
  }, 60_000);

  test('scheduled by an earlier build (its spec has no trust section): RSA 4096 keys, as that build made', async () => {
    const recorded: Partial<MeshSpec> = parseMeshSpec(yaml(1));
    delete recorded.trust;
    const { out, root, east } = await run(recorded as MeshSpec);
    expect(out.outputs?.root).toBe('generated by meshflow');
    expect(root).toMatch(OPENSSL['rsa-4096'].key);
    expect(east).toMatch(OPENSSL['rsa-4096'].key);
  }, 60_000);

  test("the plan's estimate and text follow the key algorithm: with ECDSA the CAs are off the critical path", () => {
    const rootCa = (spec: string) => {
      const plan = buildPlan(parseMeshSpec(spec));
      return { step: plan.steps.find((s) => s.kind === 'root-ca')!, critical: criticalPath(plan).steps };
    };
    for (const n of [2, 3]) {
      const ecdsa = rootCa(yaml(n));
      const rsa = rootCa(yaml(n, RSA));
      expect(ecdsa.step.creates).toContain('ECDSA P-256 keys');
      expect(rsa.step.creates).toContain('RSA 4096 keys');
      expect(ecdsa.step.estimateMs).toBeLessThanOrEqual(1_000);
      expect(rsa.step.estimateMs).toBeGreaterThan(ecdsa.step.estimateMs);
      expect(ecdsa.critical).not.toContain('root-ca');
    }
    expect(rootCa(yaml(3, RSA)).step.estimateMs).toBeGreaterThan(rootCa(yaml(2, RSA)).step.estimateMs);
  });
});
