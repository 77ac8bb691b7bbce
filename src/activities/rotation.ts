// rotate intermediates: a new intermediate CA for a cluster from the mesh's root, its `cacerts`
// secret replaced, and its istiod made to issue from it. The root is unchanged, so every
// certificate issued before and after verifies against every cluster's bundle; the old
// intermediate stays in the trust store until this cluster's istiod is seen issuing from the new
// one, and comes back (secret and istiod) when that is not seen.
//
// Istio 1.31 watches its plugged-in CA files (fsnotify on ROOT_CA_DIR, 100 ms debounce) and takes
// a new intermediate under the same root without a restart (pilot/pkg/bootstrap/istio_ca.go
// handleEvent), reissuing its own serving certificate from it. An istiod meshflow runs on this
// machine gets the files rewritten in place; one in a cluster reads the mounted secret, which the
// kubelet refreshes only after its sync period, so it is restarted instead (a rollout).
import tls from 'node:tls';
import { setTimeout as delay } from 'node:timers/promises';
import * as k8s from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { type Kube, ownedBy } from '../adapters/kube';
import { ISTIO_NAMESPACE, istiodDeployment } from '../istio/manifests';
import {
  type CacertsFiles,
  type ClusterCa,
  clusterCa,
  ensureRootCa,
  fingerprintOf,
  loadUserRoot,
  retireClusterCas,
  retireRoots,
  retireUserRoots,
  userRootEntries,
  userRootNames,
  userRootPem,
  userTrustedRoots,
} from '../istio/trust';
import { x509 } from '../pki/certs';
import { meshEntries } from '../trust-store/store';
import type { ClusterSpec } from '../spec/schema';
import type {
  RefreshTrustRequest,
  RootRequest,
  RotateIntermediateRequest,
  StepOutcome,
  StepRequest,
} from '../steps/contract';
import { NotOursError, PermanentError } from '../util/errors';
import { type ActivityDeps, clusterOf, kubeOf, objectsIn, runtimeOf } from './deps';
import { type StepContext, runStep } from './step';

/** How long an istiod has to be seen issuing from a new intermediate before it is put back. */
const TAKE_UP_MS = 90_000;
const RESTARTED_AT = 'meshflow.dev/cacerts-generation';
const ROOT_CERT_CONFIGMAP = 'istio-ca-root-cert';

const sameSet = (a: string[], b: string[]) => a.length === b.length && a.every((x) => b.includes(x));

export function rotationActivities(deps: ActivityDeps) {
  return {
    addRoot: (req: RootRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        if (req.spec.trust.rootCa) return addUserRoot(deps, req, ctx);
        const root = await ensureRootCa(
          meshEntries(deps.trustStore, req.mesh),
          req.spec.trust.keyAlgorithm,
          ctx.signal,
          req.generation,
        );
        return {
          outputs: {
            rootGeneration: String(req.generation),
            rootFingerprint: await fingerprintOf(root.certificate),
            rootNotAfter: root.certificate.notAfter.toISOString(),
          },
        };
      }),

    retireRoots: (req: RootRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        if (req.spec.trust.rootCa) {
          const entries = meshEntries(deps.trustStore, req.mesh);
          const retired = await retireUserRoots(entries, req.spec.trust.rootCa, ctx.signal);
          return { outputs: { rootsRetired: retired.join(',') || 'none stored' } };
        }
        const retired = await retireRoots(meshEntries(deps.trustStore, req.mesh), req.generation, ctx.signal);
        return { outputs: { rootsRetired: retired.join(',') } };
      }),

    refreshTrust: (req: RefreshTrustRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const c = clusterOf(req.spec, req.step.cluster!);
        const entries = meshEntries(deps.trustStore, req.mesh);
        const k = await ourCacerts(deps, req, c.name, ctx);
        const ca = await clusterCa(entries, c.name, req.spec.trust, undefined, ctx.signal);
        const bundle = await Promise.all(
          x509.PemConverter.decode(ca.files['root-cert.pem']).map((d) => fingerprintOf(new x509.X509Certificate(d))),
        );
        if (!sameSet(bundle, req.roots))
          throw new PermanentError(
            `the trust store holds roots ${bundle.join(', ')} for mesh ${req.mesh}, not ${req.roots.join(', ')}`,
          );
        await putCacerts(k, req, c, ca.files, ctx);
        let how = `no istiod of its own (${c.primary}'s publishes its bundle)`;
        if (c.role !== 'remote') {
          const runner = runtimeOf(deps, c.provider).istiodRunner;
          if (runner) {
            how = (await runner.updateCacerts(req.mesh, c, { ...ca.files }))
              ? 'istiod reloaded the bundle'
              : 'istiod not started yet';
          } else {
            await restartIstiod(k, ca, ctx, istiodDeployment(req.spec.istio.revision));
            how = 'istiod restarted';
          }
        }
        // istiod publishes the roots it trusts to every namespace (istio-ca-root-cert): seen there, they are in use.
        const since = Date.now();
        let seen: string[] | undefined;
        while (!sameSet((seen = await publishedRoots(k).catch(() => undefined)) ?? [], req.roots)) {
          if (Date.now() - since > TAKE_UP_MS)
            throw new Error(
              `${c.name}'s ${ISTIO_NAMESPACE}/${ROOT_CERT_CONFIGMAP} still holds roots ` +
                `${(seen ?? []).join(', ') || 'none'} ` +
                `after ${TAKE_UP_MS / 1000}s, not ${req.roots.join(', ')}: its istiod did not take up the bundle ` +
                '(see its log: `meshflow logs <mesh> <cluster>`)',
            );
          ctx.heartbeat({ waitingFor: `${c.name} to trust roots ${req.roots.join(', ')}` });
          await delay(200, undefined, { signal: ctx.signal });
        }
        return {
          outputs: { trustedRoots: req.roots.join(','), trustTakenUp: `${how}; published in ${Date.now() - since} ms` },
        };
      }),

    rotateIntermediate: (req: RotateIntermediateRequest): Promise<StepOutcome> =>
      runStep(async (ctx) => {
        const c = clusterOf(req.spec, req.step.cluster!);
        const entries = meshEntries(deps.trustStore, req.mesh);
        const k = await ourCacerts(deps, req, c.name, ctx);
        const next = await clusterCa(entries, c.name, req.spec.trust, req.generation, ctx.signal);
        ctx.heartbeat({ rotating: c.name, generation: req.generation });
        await putCacerts(k, req, c, next.files, ctx);
        let taken: string;
        try {
          taken = await makeIstiodUse(deps, k, req, c, next, ctx);
        } catch (err) {
          if (ctx.signal.aborted) throw err;
          // Not taken up: the cluster goes back to the intermediate it had (still in the store: older
          // generations are retired only once a new one is taken up), and the new one is dropped.
          const previous = await clusterCa(entries, c.name, req.spec.trust, req.generation - 1, ctx.signal);
          await putCacerts(k, req, c, previous.files, ctx);
          await makeIstiodUse(deps, k, req, c, previous, ctx).catch(() => undefined);
          await entries.remove(
            [`${c.name}/ca.g${req.generation}-cert.pem`, `${c.name}/ca.g${req.generation}-key.pem`],
            ctx.signal,
          );
          throw ApplicationFailure.create({
            type: 'RotationNotTakenUp',
            message:
              `the new intermediate of ${c.name} was not taken up, so its previous one (${previous.fingerprint}) ` +
              `is back in place: ${(err as Error).message}`,
            nonRetryable: true,
          });
        }
        const retired = await retireClusterCas(entries, c.name, req.generation, ctx.signal);
        return {
          outputs: {
            caGeneration: String(next.generation),
            caIssuer: await issuerFingerprint(next),
            caNotAfter: next.notAfter,
            caFingerprint: next.fingerprint,
            caTakenUp: taken,
            ...(retired.length ? { caRetired: retired.join(',') } : {}),
          },
        };
      }),
  };
}

/**
 * The first stage of rotating a user's root (`req.spec` names the current one, `req.rootCa` the new
 * one the client copied into the store): the new root is checked, a current root kept on the host's
 * disk is copied into the store beside it (so every bundle holds both wherever the steps run), and
 * the roots every cluster is to trust are answered. Nothing names a key's content.
 */
async function addUserRoot(deps: ActivityDeps, req: RootRequest, ctx: StepContext) {
  const current = req.spec.trust.rootCa!;
  if (!req.rootCa?.stored)
    throw new PermanentError(
      `mesh ${req.mesh} uses your own root CA (trust.rootCa): meshflow does not make a new one; ` +
        'give it with `meshflow rotate NAME root --root-cert FILE --root-key FILE`',
    );
  const entries = meshEntries(deps.trustStore, req.mesh);
  const next = await loadUserRoot(req.rootCa, entries, ctx.signal);
  const old = await userRootPem(current, entries, ctx.signal);
  const newPrint = await fingerprintOf(next.certificate);
  if ((await fingerprintOf(new x509.X509Certificate(old.cert))) === newPrint) {
    // The copy the client made is no root of this mesh: it leaves the store (and so every bundle).
    await entries.remove(Object.values(userRootEntries(req.rootCa.stored)), ctx.signal);
    throw new PermanentError(
      `${userRootNames(req.rootCa).cert} is the root CA mesh ${req.mesh} uses already: give a new one`,
    );
  }
  if (current.stored === undefined) {
    const at = userRootEntries(`files/rotated-g${req.generation - 1}/root-ca`);
    await entries.putIfAbsent(
      { [at.cert]: old.cert, [at.key]: old.key, ...(old.chain !== undefined ? { [at.chain]: old.chain } : {}) },
      ctx.signal,
    );
  }
  return {
    outputs: {
      rootGeneration: String(req.generation),
      rootFingerprint: newPrint,
      rootNotAfter: next.certificate.notAfter.toISOString(),
      root: `user-provided ${req.rootCa.certFile ?? '(PEM)'}`,
      trustedRoots: (await userTrustedRoots(entries, current, ctx.signal)).join(','),
      newTop: (await userTrustedRoots(entries, { ...req.rootCa }, ctx.signal))[0],
    },
  };
}

/** The fingerprint of the root in `ca`'s chain that signed its intermediate. */
async function issuerFingerprint(ca: ClusterCa): Promise<string> {
  const chain = x509.PemConverter.decode(ca.files['cert-chain.pem']).map((d) => new x509.X509Certificate(d));
  return chain.length > 1 ? fingerprintOf(chain[chain.length - 1]) : '';
}

/** The roots a cluster's istio-system/istio-ca-root-cert holds (istiod writes it from its CA bundle). */
async function publishedRoots(k: Kube): Promise<string[] | undefined> {
  const cm = await k.read({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    namespace: ISTIO_NAMESPACE,
    name: ROOT_CERT_CONFIGMAP,
  });
  const pem = (cm as k8s.V1ConfigMap | undefined)?.data?.['root-cert.pem'];
  if (!pem) return undefined;
  const certs = x509.PemConverter.decode(pem).map((d) => new x509.X509Certificate(d));
  return Promise.all(certs.map(fingerprintOf));
}

/** The cluster's API, once its cacerts secret is the mesh's (or absent): meshflow rotates only what it made. */
async function ourCacerts(deps: ActivityDeps, req: StepRequest, cluster: string, ctx: StepContext): Promise<Kube> {
  const k = await kubeOf(deps, req.spec, cluster, ctx.signal);
  const secret = await k.read({ apiVersion: 'v1', kind: 'Secret', namespace: ISTIO_NAMESPACE, name: 'cacerts' });
  if (secret && !ownedBy(secret, req.mesh)) {
    throw new NotOursError(
      `cluster ${cluster}'s cacerts secret is not mesh ${req.mesh}'s (someone replaced it): meshflow rotates ` +
        'only what it made; `meshflow drift` shows the change',
    );
  }
  return k;
}

async function putCacerts(k: Kube, req: StepRequest, c: ClusterSpec, files: CacertsFiles, ctx: StepContext) {
  const secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'cacerts', namespace: ISTIO_NAMESPACE },
    type: 'Opaque',
    stringData: files,
  };
  await k.apply(req.mesh, [secret], { track: (refs) => ctx.track(...objectsIn(c.name, refs)) });
}

/**
 * Makes the cluster's istiod issue from `ca` and says how that was seen. A remote cluster has no
 * istiod (its primary's signs for it); an istiod on this machine gets its files rewritten and is
 * watched until its serving certificate comes from `ca`; one in the cluster is restarted.
 */
async function makeIstiodUse(
  deps: ActivityDeps,
  k: Kube,
  req: StepRequest,
  c: ClusterSpec,
  ca: ClusterCa,
  ctx: StepContext,
): Promise<string> {
  if (c.role === 'remote') return `no istiod of its own (${c.primary}'s signs for it)`;
  const runner = runtimeOf(deps, c.provider).istiodRunner;
  if (runner) {
    const endpoint = await runner.updateCacerts(req.mesh, c, { ...ca.files });
    if (!endpoint) return 'istiod not started yet: it starts with this intermediate';
    const since = Date.now();
    await servedFrom(endpoint.secureGrpc, ca, ctx);
    return `istiod reloaded it in ${Date.now() - since} ms (its serving certificate is issued from it)`;
  }
  await restartIstiod(k, ca, ctx, istiodDeployment(req.spec.istio.revision));
  return 'istiod restarted (a rollout of istio-system/istiod)';
}

/** Waits until the TLS certificate istiod serves on `address` is signed by `ca`'s intermediate. */
async function servedFrom(address: string, ca: ClusterCa, ctx: StepContext): Promise<void> {
  const intermediate = new x509.X509Certificate(ca.files['ca-cert.pem']);
  const deadline = Date.now() + TAKE_UP_MS;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    ctx.signal.throwIfAborted();
    try {
      const leaf = await servingCertificate(address);
      if (await leaf.verify({ publicKey: intermediate.publicKey, signatureOnly: true })) return;
      last = `it still serves a certificate issued by "${leaf.issuer}" from another key`;
    } catch (err) {
      last = (err as Error).message;
    }
    ctx.heartbeat({ waitingFor: `istiod at ${address} to issue from intermediate ${ca.fingerprint}` });
    await delay(200, undefined, { signal: ctx.signal });
  }
  throw new Error(
    `istiod at ${address} did not take up intermediate ${ca.fingerprint} in ${TAKE_UP_MS / 1000}s: ${last}`,
  );
}

function servingCertificate(address: string): Promise<x509.X509Certificate> {
  const [host, port] = [
    address.slice(0, address.lastIndexOf(':')),
    Number(address.slice(address.lastIndexOf(':') + 1)),
  ];
  return new Promise((resolve, reject) => {
    // Only the certificate is read; nothing is sent. Verification is what the caller does with it.
    const socket = tls.connect({
      host,
      port,
      servername: 'istiod.istio-system.svc',
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
    });
    socket.setTimeout(5000, () => socket.destroy(new Error('TLS handshake timed out')));
    socket.once('secureConnect', () => {
      const raw = socket.getPeerCertificate().raw;
      socket.end();
      if (!raw) reject(new Error('istiod sent no certificate'));
      else resolve(new x509.X509Certificate(raw));
    });
    socket.once('error', reject);
  });
}

/** A rollout of the istiod Deployment (its pods mount the new secret), waited for. */
async function restartIstiod(k: Kube, ca: ClusterCa, ctx: StepContext, name: string): Promise<void> {
  await k.retrying(() =>
    k.apps.patchNamespacedDeployment(
      {
        name,
        namespace: ISTIO_NAMESPACE,
        body: { spec: { template: { metadata: { annotations: { [RESTARTED_AT]: `${ca.generation}` } } } } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    ),
  );
  const deadline = Date.now() + TAKE_UP_MS * 3;
  for (;;) {
    const d = await k.retrying(() => k.apps.readNamespacedDeploymentStatus({ name, namespace: ISTIO_NAMESPACE }));
    const want = d.spec?.replicas ?? 1;
    const st = d.status;
    if (
      (st?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0) &&
      (st?.updatedReplicas ?? 0) >= want &&
      (st?.availableReplicas ?? 0) >= want &&
      (st?.replicas ?? 0) <= want
    )
      return;
    if (Date.now() > deadline)
      throw new Error(`istio-system/${name} did not finish its rollout in ${(TAKE_UP_MS * 3) / 1000}s`);
    ctx.heartbeat({ waitingFor: `istio-system/${name} rollout` });
    await delay(500, undefined, { signal: ctx.signal });
  }
}
