// `trust-chain`: Istio itself proves the mesh's trust. For each cluster, istiod's CA (the one that
// serves the cluster: its own, or a remote's primary) is asked, as a workload of that cluster asks
// it, to sign a CSR: authenticated by a short-lived token of a sample service account (TokenRequest,
// audience istio-ca, 10 minutes), with the cluster's ID in the `clusterid` header. The chain it
// returns must verify, link by link, up to the mesh's root from the trust store (not the root istiod
// sends along), and carry that service account's SPIFFE identity in the mesh's trust domain.
//
// The test key is made here and never leaves this function: not logged, not returned, never
// exported. The token is sent only over TLS to a server whose certificate chains to the mesh root.
import fs from 'node:fs';
import { webcrypto } from 'node:crypto';
import { CA_TOKEN_AUDIENCE, CaRequestError, createCertificate, servedChain } from '../istio/ca';
import { ISTIO_NAMESPACE, READER_SERVICE_ACCOUNT } from '../istio/manifests';
import { SAMPLE_APPS } from '../istio/sample-apps';
import { appPlacement } from '../plan/plan';
import { generateKeyPair, x509 } from '../pki/certs';
import { certificatesOf, parseSpiffeId, spiffeId, uriSans, verifyChain } from '../pki/chain';
import type { ClusterSpec, MeshSpec } from '../spec/schema';
import { type Call, type Verdict, fail, notFound, notSupported, pass } from './result';
import { controlPlaneOf } from '../plan/plan';
import type { CheckContext } from './context';
import { type ReachedIstiod, SECURE_GRPC_PORT, withIstiod } from './istiod-reach';

/** The least lifetime the TokenRequest API grants (10 minutes). */
const TOKEN_SECONDS = 600;
const CERT_SECONDS = 600;

/** The mesh's trust domain: meshConfig.trustDomain of the spec's Istio values, else Istio's default. */
export function trustDomainOf(spec: MeshSpec): string {
  const meshConfig = spec.istio.values.meshConfig as { trustDomain?: unknown } | undefined;
  return typeof meshConfig?.trustDomain === 'string' && meshConfig.trustDomain
    ? meshConfig.trustDomain
    : 'cluster.local';
}

/**
 * The service account whose identity the check asks for in a cluster: the first the sample
 * creates in an injected namespace there (its curl client, Online Boutique's services), else the
 * reader every Istio install makes in istio-system.
 */
export function probeServiceAccount(spec: MeshSpec, cluster: string): { namespace: string; name: string } {
  if (spec.app.sample !== 'none') {
    type Obj = { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } };
    const objects = SAMPLE_APPS[spec.app.sample].manifests(cluster, appPlacement(spec)) as Obj[];
    const injected = new Set(
      objects
        .filter((o) => o.kind === 'Namespace' && o.metadata.labels?.['istio-injection'] === 'enabled')
        .map((o) => o.metadata.name),
    );
    const sa = objects.find((o) => o.kind === 'ServiceAccount' && injected.has(o.metadata.namespace ?? ''));
    if (sa) return { namespace: sa.metadata.namespace!, name: sa.metadata.name };
  }
  return { namespace: ISTIO_NAMESPACE, name: READER_SERVICE_ACCOUNT };
}

/** The last line of a log that matches, from its last 256 KiB (istiod says why it refused only there). */
function lastLogLine(file: string, pattern: RegExp): string | undefined {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const length = Math.min(size, 256 * 1024);
      const buf = Buffer.alloc(length);
      fs.readSync(fd, buf, 0, length, size - length);
      return buf
        .toString()
        .split('\n')
        .reverse()
        .find((l) => pattern.test(l));
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return undefined;
  }
}

const cacertsHint = (primary: string) =>
  `the cacerts istiod of ${primary} signs with do not chain to the mesh root: restore ${primary}'s cacerts ` +
  "from the mesh's trust store (re-run `meshflow up`, or the rotation that was under way), then restart " +
  'istiod (it reloads a new intermediate by itself, a new root only with multi-root on)';

export async function trustChain(ctx: CheckContext, c: ClusterSpec, call: Call): Promise<Verdict> {
  const primary = controlPlaneOf(ctx.spec, c).name;
  if (!ctx.meshRoot) {
    return notSupported("the mesh's root certificate is not in this worker's trust store: nothing to verify against");
  }
  // Reached as a workload's proxy reaches it, on its TLS port 15012, through a port-forward to its pod.
  return withIstiod(ctx, primary, call, (istiod) => askToSign(ctx, c, primary, istiod, call), [SECURE_GRPC_PORT]);
}

async function askToSign(
  ctx: CheckContext,
  c: ClusterSpec,
  primary: string,
  istiod: ReachedIstiod,
  call: Call,
): Promise<Verdict> {
  const localLog = ctx.access(primary).istiod?.log;
  const meshRoot = ctx.meshRoot!;
  const { namespace, name } = probeServiceAccount(ctx.spec, c.name);
  const who = `${namespace}/${name}`;
  const want = spiffeId(trustDomainOf(ctx.spec), namespace, name);

  // istiod's serving certificate comes from the same CA: a chain that does not reach the mesh root
  // here is the same fault, found before a token is sent to it.
  const served = verifyChain(
    await call(() => istiod.through(() => servedChain(istiod.secureGrpc, { signal: ctx.signal }))),
    [meshRoot],
  );
  if (!served.ok) {
    return fail(
      `istiod of ${primary} (${istiod.pod}) serves a certificate that does not verify to the mesh root: ` +
        served.reason,
      cacertsHint(primary),
    );
  }

  let token: string;
  try {
    const answer = await call(() =>
      ctx.api[c.name].core.createNamespacedServiceAccountToken({
        name,
        namespace,
        body: { spec: { audiences: [CA_TOKEN_AUDIENCE], expirationSeconds: TOKEN_SECONDS } },
      }),
    );
    token = answer.status!.token;
  } catch (err) {
    if (!notFound(err)) throw err;
    return fail(
      `service account ${who} does not exist in ${c.name}, so no token of it can ask for a certificate`,
      'the sample app is not deployed there (or was removed): re-run `meshflow up`',
    );
  }

  const keys = (await generateKeyPair('ecdsa-p256')).keys;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: want }])],
  });
  let chain: string[];
  try {
    chain = await call(() =>
      istiod.through(() =>
        createCertificate(
          istiod.secureGrpc,
          { csr: csr.toString('pem'), validitySeconds: CERT_SECONDS, token, clusterId: c.name },
          meshRoot,
          { signal: ctx.signal },
        ),
      ),
    );
  } catch (err) {
    if (!(err instanceof CaRequestError) || err.code === 503) throw err;
    if (err.code !== 401) return fail(`istiod of ${primary} did not sign: ${err.message}`, `see ${istiod.logs}`);
    // istiod says why it refused only in its log: read where meshflow runs it (elsewhere the hint names it).
    const why = localLog
      ? lastLogLine(localLog, /Failed to authenticate client/)?.replace(/^.*Failed to authenticate/, '')
      : undefined;
    return fail(
      `istiod of ${primary} refused the token of ${who} from ${c.name}` + (why ? `: ${why.trim()}` : ''),
      `istiod reviews the token in the cluster its clusterid header names (${c.name}) and accepts audience ` +
        `${CA_TOKEN_AUDIENCE}: ` +
        (primary === c.name
          ? `istiod's own kubeconfig must be allowed to create tokenreviews in ${c.name}`
          : `${primary} must read ${c.name} through istio-remote-secret-${c.name}, whose reader may create ` +
            'tokenreviews (ClusterRole istio-reader-clusterrole-istio-system)') +
        `; see ${istiod.logs}`,
    );
  }

  const verdict = verifyChain(chain, [meshRoot]);
  if (!verdict.ok) {
    return fail(
      `the chain istiod of ${primary} signed for ${who} of ${c.name} does not verify to the mesh root: ` +
        `${verdict.reason} (chain: ${verdict.path.slice(1).join(' <- ') || 'the leaf alone'})`,
      cacertsHint(primary),
    );
  }
  // The certificate is for the key of this CSR, not one istiod had at hand.
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  if (!verdict.leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(spki)) {
    return fail(`istiod of ${primary} returned a certificate for another key than the CSR's`, `see ${istiod.logs}`);
  }
  const sans = uriSans(verdict.leaf);
  if (!sans.includes(want)) {
    const got = sans.map(parseSpiffeId).find((id) => id);
    return fail(
      `the certificate istiod of ${primary} signed for ${who} of ${c.name} names ${sans.join(', ') || 'no URI'}, ` +
        `not ${want}`,
      got && got.trustDomain !== trustDomainOf(ctx.spec)
        ? `istiod's trust domain is ${got.trustDomain}, the mesh's ${trustDomainOf(ctx.spec)}: set ` +
            'istio.values.meshConfig.trustDomain the same for every cluster and re-run `meshflow up`'
        : `istiod took the token for another identity: check the \`istio\` ConfigMap of ${primary} and ${istiod.logs}`,
    );
  }
  const intermediates = certificatesOf(chain).length - 1;
  return pass(
    `istiod of ${primary} signed ${want} (token from ${c.name}); the chain verifies to the mesh root through ` +
      `${verdict.path.slice(1, -1).join(' <- ') || 'no intermediate'} (${intermediates} certificate(s) sent along)`,
  );
}
