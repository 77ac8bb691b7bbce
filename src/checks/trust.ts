// Trust checks the API answers: each cluster holds the mesh's intermediate CA (MF0101) and every
// cluster trusts one root (MF0102). Whether istiod really signs with them is trust-chain.ts.
import { ISTIO_NAMESPACE } from '../istio/manifests';
import { eachCluster, everyCluster, onceForMesh } from './define';
import { fail, pass } from './result';

const KEYS = ['ca-cert.pem', 'ca-key.pem', 'root-cert.pem', 'cert-chain.pem'];

export const cacerts = eachCluster('MF0101', everyCluster, async (ctx, c, call) => {
  const { secret: s, absent } = await ctx.cacerts(c.name, call);
  if (!s) {
    return fail(
      `${ISTIO_NAMESPACE}/cacerts does not exist (${absent})`,
      'istiod falls back to a self-signed root that no other cluster trusts: ' +
        're-run `meshflow up` to restore cacerts, then restart istiod',
    );
  }
  const missing = KEYS.filter((key) => !s.data?.[key]);
  if (missing.length) {
    return fail(
      `cacerts lacks ${missing.join(', ')}`,
      'the secret was changed by hand: re-run `meshflow up` to restore it',
    );
  }
  return pass('ca-cert, ca-key, root-cert and cert-chain present');
});

export const sameRoot = onceForMesh('MF0102', async (ctx, call) => {
  const roots = new Map<string, string>();
  for (const c of ctx.spec.clusters) {
    const root = (await ctx.cacerts(c.name, call)).secret?.data?.['root-cert.pem'];
    if (root) roots.set(c.name, Buffer.from(root, 'base64').toString());
  }
  if (roots.size !== ctx.spec.clusters.length) {
    const without = ctx.spec.clusters.filter((c) => !roots.has(c.name)).map((c) => c.name);
    return fail(
      `${without.join(', ')} ha${without.length === 1 ? 's' : 've'} no root certificate to compare`,
      'see the cacerts checks (MF0101)',
    );
  }
  // Group clusters by root: the largest group is the mesh's, the others are the odd ones out.
  const groups = new Map<string, string[]>();
  for (const [cluster, root] of roots) groups.set(root, [...(groups.get(root) ?? []), cluster]);
  if (groups.size === 1) return pass(`all ${roots.size} clusters trust the same root`);
  const [main, ...odd] = [...groups.values()].sort((a, b) => b.length - a.length);
  return fail(
    `${odd.flat().join(', ')} trust${odd.flat().length === 1 ? 's' : ''} a different root from ${main.join(', ')} ` +
      `(${groups.size} roots in all)`,
    'mismatched roots make cross-cluster mTLS fail (CERTIFICATE_VERIFY_FAILED / UNKNOWN_CA): ' +
      'give every cluster cacerts from one root, then restart istiod',
  );
});
