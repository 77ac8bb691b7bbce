// Rotation on a real two-cluster mesh (local clusters, the real workflow, activities and istiods):
// `rotate intermediates` gives each cluster a new intermediate from the same root, each istiod
// reloads it without a restart and serves from it, the old one leaves the trust store, and what
// was issued before and after verifies against every cluster's root bundle; `rotate readers` puts
// fresh tokens in every remote secret while the xDS answer each istiod gives a sidecar of each
// network is asked over and over, and no answer loses an endpoint; `rotate root` has every cluster
// trust a new root beside the old, then switches every intermediate to it, and what was issued
// under either root verifies against every cluster's bundle until `--finish` drops the old root.
// Every check (the trust-chain check's CSR signed by each istiod among them) passes after each.
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { meshStatus, rotateMesh, startMesh, teardownMesh } from '../src/client';
import { fetchEndpoints, outboundCluster } from '../src/istio/xds';
import { LocalClusters } from '../src/local/clusters';
import { parseMeshSpec } from '../src/spec/load';
import type { MeshSpec } from '../src/spec/schema';
import { caDir } from '../src/trust-store/state-dir';
import { sleep } from '../src/util/net';
import { tool } from './helpers/env';
import { historyPayloadText } from './helpers/histories';
import { waitPhase, withRealWorker } from './helpers/mesh';

const MESH = 'rotator';
const CLUSTERS = ['cluster1', 'cluster2'];
const rig = withRealWorker('e2e-rotate', MESH);

const spec = (): MeshSpec => ({
  ...parseMeshSpec(fs.readFileSync(path.join(__dirname, '..', 'examples', 'two-clusters.yaml'), 'utf8')),
  name: MESH,
  drift: { every: 'off', repair: true },
});

const local = () => new LocalClusters(rig.state(), { kubeApiserver: tool('kube-apiserver'), etcd: tool('etcd') });
const core = (cluster: string) => {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(local().get(`${MESH}-${cluster}`)!.kubeconfig);
  return kc.makeApiClient(k8s.CoreV1Api);
};
const cacerts = async (cluster: string) => {
  const s = await core(cluster).readNamespacedSecret({ name: 'cacerts', namespace: 'istio-system' });
  return Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
};
const istiod = (cluster: string) => local().istiod(`${MESH}-${cluster}`)!;

/** The certificate chain istiod serves on its TLS gRPC port: its own certificate and the CAs above it. */
function servedChain(address: string): Promise<X509Certificate[]> {
  const port = Number(address.split(':')[1]);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    socket.once('secureConnect', () => {
      const chain: X509Certificate[] = [];
      for (let c = socket.getPeerCertificate(true); c?.raw; c = c.issuerCertificate) {
        chain.push(new X509Certificate(c.raw));
        if (c.issuerCertificate === c) break;
      }
      socket.end();
      resolve(chain);
    });
    socket.once('error', reject);
  });
}

/** Whether `chain` (leaf first) verifies link by link up to the root in `rootPem`, each link valid now. */
function verifiesTo(chain: X509Certificate[], rootPem: string): boolean {
  const root = new X509Certificate(rootPem);
  const links = [...chain.filter((c) => c.fingerprint256 !== root.fingerprint256), root];
  const now = Date.now();
  return links.every(
    (c, i) =>
      Date.parse(c.validFrom) <= now &&
      now <= Date.parse(c.validTo) &&
      (i === links.length - 1 ? c.verify(c.publicKey) : c.verify(links[i + 1].publicKey) && links[i + 1].ca),
  );
}

/** What istiod of `cluster` tells a sidecar of its network about helloworld: endpoint addresses, sorted. */
async function xdsAnswer(cluster: string, network: string): Promise<string[]> {
  const name = outboundCluster('helloworld.sample.svc.cluster.local', 5000);
  const eps = await fetchEndpoints(istiod(cluster).xds, { clusterId: cluster, network, namespace: 'sample' }, [name]);
  return eps[name].map((e) => `${e.address}:${e.port}`).sort();
}

test('intermediates, reader tokens and the root rotate on a ready mesh, taken up, no endpoint lost', async () => {
  const handle = await startMesh(rig.env().client, spec(), 'e2e-rotate');
  expect((await waitPhase(rig.env().client, MESH, ['ready', 'failed', 'deleted'], 240_000)).phase).toBe('ready');

  // Before: what each istiod serves, issued by its cluster's first intermediate.
  const before: Record<string, X509Certificate[]> = {};
  const oldCa: Record<string, string> = {};
  for (const c of CLUSTERS) {
    before[c] = await servedChain(istiod(c).secureGrpc);
    oldCa[c] = (await cacerts(c))['ca-cert.pem'];
    expect(before[c][0].verify(new X509Certificate(oldCa[c]).publicKey)).toBe(true);
  }
  const s0 = await meshStatus(rig.env().client, MESH);
  expect(s0.trust!.intermediates.map((i) => i.generation)).toEqual([1, 1]);
  // New meshes' intermediates live 730 days (the default trust.intermediateValidity).
  const days = (Date.parse(s0.trust!.intermediates[0].notAfter) - Date.now()) / 86_400_000;
  expect(Math.round(days)).toBe(730);

  const out = await rotateMesh(rig.env().client, MESH, { what: 'intermediates' });
  expect(out.update).toMatchObject({ state: 'applied', rerun: ['cacerts:cluster1', 'cacerts:cluster2'] });
  expect(out.checks.filter((c) => c.status === 'failed')).toEqual([]);
  const s1 = await meshStatus(rig.env().client, MESH);
  for (const c of CLUSTERS) {
    const step = s1.steps.find((st) => st.id === `cacerts:${c}`)!;
    expect(step.outputs).toMatchObject({ caGeneration: '2', caRetired: '1' });
    expect(step.outputs!.caTakenUp).toMatch(/^istiod reloaded it in \d+ ms/);
    const now = await cacerts(c);
    const next = new X509Certificate(now['ca-cert.pem']);
    expect(now['ca-cert.pem']).not.toBe(oldCa[c]);
    expect(next.fingerprint256.replace(/:/g, '').toLowerCase().slice(0, 16)).toBe(step.outputs!.caFingerprint);
    // The same root: the new intermediate is signed by it, and istiod now serves from the new one.
    expect(next.verify(new X509Certificate(now['root-cert.pem']).publicKey)).toBe(true);
    const after = await servedChain(istiod(c).secureGrpc);
    expect(after[0].verify(next.publicKey)).toBe(true);
    // What was issued before and after verifies against every cluster's bundle.
    for (const other of CLUSTERS) {
      const root = (await cacerts(other))['root-cert.pem'];
      expect(verifiesTo([before[c][0], new X509Certificate(oldCa[c])], root)).toBe(true);
      expect(verifiesTo([after[0], next], root)).toBe(true);
    }
    // The store keeps the new generation only.
    const dir = path.join(caDir(rig.state(), MESH), c);
    expect(fs.readdirSync(dir).sort()).toEqual(['ca.g2-cert.pem', 'ca.g2-key.pem']);
  }

  // Readers: while every remote secret gets a new token, each istiod's answer keeps every endpoint.
  const networks: Record<string, string> = { cluster1: 'network1', cluster2: 'network2' };
  const steady = Object.fromEntries(
    await Promise.all(CLUSTERS.map(async (c) => [c, await xdsAnswer(c, networks[c])] as const)),
  );
  for (const c of CLUSTERS) expect(steady[c].length).toBe(2); // a local pod and the other network's gateway
  const tokensBefore = s1.trust!.readers.map((r) => r.expiresAt);
  let rotating = true;
  const seen: string[] = [];
  const watch = (async () => {
    while (rotating) {
      for (const c of CLUSTERS) {
        const answer = await xdsAnswer(c, networks[c]);
        seen.push(`${c} ${answer.length}`);
        if (JSON.stringify(answer) !== JSON.stringify(steady[c]))
          throw new Error(`istiod of ${c} answered ${answer.join(', ')} (want ${steady[c].join(', ')})`);
      }
      await sleep(50);
    }
  })();
  const readers = await rotateMesh(rig.env().client, MESH, { what: 'readers' }).finally(() => (rotating = false));
  await watch;
  expect(seen.length).toBeGreaterThan(4);
  expect(readers.update).toMatchObject({
    state: 'applied',
    rerun: ['link:cluster1->cluster2', 'link:cluster2->cluster1'],
  });
  expect(readers.checks.filter((c) => c.status === 'failed')).toEqual([]);
  const s2 = await meshStatus(rig.env().client, MESH);
  expect(s2.trust!.readers.map((r) => r.expiresAt)).not.toEqual(tokensBefore);
  for (const c of CLUSTERS) expect(await xdsAnswer(c, networks[c])).toEqual(steady[c]);

  // Root: a new root trusted beside the old in every cluster, every intermediate from it; the old
  // root stays trusted until the grace ends (here: --finish). At each stage, what was issued under
  // the old root and under the new verifies against every cluster's bundle, until the old is dropped.
  const rootBefore = s2.trust!.root!.fingerprint!;
  const issuedUnderOld: Record<string, X509Certificate[]> = {};
  for (const c of CLUSTERS) issuedUnderOld[c] = await servedChain(istiod(c).secureGrpc);
  const root = await rotateMesh(rig.env().client, MESH, { what: 'root', grace: '1h' });
  expect(root.update).toMatchObject({ state: 'applied' });
  expect(root.checks.filter((c) => c.status === 'failed')).toEqual([]);
  expect(root.checks.filter((c) => c.name === 'trust-chain' && c.status === 'passed').length).toBe(2);
  const s3 = await meshStatus(rig.env().client, MESH);
  expect(s3.rootRotation).toMatchObject({ stage: 'switched', oldRoot: rootBefore });
  const newRoot = s3.rootRotation!.newRoot;
  expect(s3.trust!.root!.fingerprint).toBe(newRoot);
  const fp = (pem: string) => new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase().slice(0, 16);
  const bundleOf = async (c: string) => {
    const cm = await core(c).readNamespacedConfigMap({ name: 'istio-ca-root-cert', namespace: 'istio-system' });
    return cm.data!['root-cert.pem'];
  };
  const issuedUnderNew: Record<string, X509Certificate[]> = {};
  for (const c of CLUSTERS) {
    const pems = (await bundleOf(c)).match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!;
    expect(pems.map(fp).sort()).toEqual([rootBefore, newRoot].sort());
    issuedUnderNew[c] = await servedChain(istiod(c).secureGrpc);
    const inter = issuedUnderNew[c].find((x) => x.ca && !x.checkIssued(x))!;
    expect(fp(inter.toString())).toBe(
      (await meshStatus(rig.env().client, MESH)).steps.find((st) => st.id === `cacerts:${c}`)!.outputs!.caFingerprint,
    );
  }
  for (const c of CLUSTERS)
    for (const other of CLUSTERS) {
      const bundle = await bundleOf(other);
      const roots = bundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!;
      expect(roots.some((r) => verifiesTo(issuedUnderOld[c].slice(0, 2), r))).toBe(true);
      expect(roots.some((r) => verifiesTo(issuedUnderNew[c].slice(0, 2), r))).toBe(true);
    }
  const finish = await rotateMesh(rig.env().client, MESH, { what: 'root', finish: true });
  expect(finish.update).toMatchObject({ state: 'applied' });
  expect(finish.checks.filter((c) => c.status === 'failed')).toEqual([]);
  expect((await meshStatus(rig.env().client, MESH)).rootRotation).toBeUndefined();
  for (const c of CLUSTERS) {
    const bundle = await bundleOf(c);
    expect(fp(bundle)).toBe(newRoot);
    expect(bundle.match(/BEGIN CERTIFICATE/g)!.length).toBe(1);
    for (const other of CLUSTERS) {
      expect(verifiesTo(issuedUnderNew[other].slice(0, 2), bundle)).toBe(true);
      expect(verifiesTo(issuedUnderOld[other].slice(0, 2), bundle)).toBe(false);
    }
  }
  expect(
    fs
      .readdirSync(caDir(rig.state(), MESH))
      .filter((f) => f.startsWith('root'))
      .sort(),
  ).toEqual(['root.g2-cert.pem', 'root.g2-key.pem']);

  // No key or token in the history.
  const history = await historyPayloadText(handle);
  expect(history).not.toContain('PRIVATE KEY');
  expect(history).not.toMatch(/eyJ[A-Za-z0-9_-]{20,}\./); // a JWT

  await (await teardownMesh(rig.env().client, MESH)).result();
  expect(fs.existsSync(caDir(rig.state(), MESH))).toBe(false);
}, 600_000);
