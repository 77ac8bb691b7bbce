// Every check `verify` runs, registered once: a stable code (MF0101...), the name results carry, a
// title, the clusters it runs on, and what its docs page says. The codes are grouped by domain:
// MF01xx trust, MF02xx control plane, MF03xx links between clusters, MF04xx Istio's own view,
// MF05xx traffic. A code is never reused or renumbered: scripts filter on it (`verify --only`).
//
// Pure data, so the workflow may read it (to refuse an unknown code) as the CLI, the API and the
// docs generator do; what each check does lives in the domain modules beside this one, which
// registry.ts binds to these codes.

export type CheckDomain = 'trust' | 'control plane' | 'links' | "Istio's view" | 'traffic';

export interface CheckInfo {
  code: string;
  /** The name results carry (`cacerts`), as they did before codes existed. */
  name: string;
  title: string;
  domain: CheckDomain;
  /** Which clusters it runs on, as the docs say it. */
  runsOn: string;
  /** What a pass proves. */
  proves: string;
  /** What a failure usually means, and the fix. */
  whenFailed: string;
}

/** By code; ./registry.ts says the order verify runs them in. */
export const CHECKS: readonly CheckInfo[] = [
  {
    code: 'MF0101',
    name: 'cacerts',
    title: "The cluster's intermediate CA is in place",
    domain: 'trust',
    runsOn: 'every cluster',
    proves:
      'istio-system/cacerts exists with ca-cert.pem, ca-key.pem, root-cert.pem and cert-chain.pem, so istiod signs ' +
      "workload certificates with the mesh's intermediate rather than a self-signed root.",
    whenFailed:
      'The secret was deleted or edited by hand. `meshflow up` (or `meshflow drift`) re-applies it; restart istiod ' +
      'afterwards so it reads the new CA.',
  },
  {
    code: 'MF0102',
    name: 'same-root',
    title: 'Every cluster trusts one root',
    domain: 'trust',
    runsOn: 'the mesh, one result',
    proves: "The root-cert.pem of every cluster's cacerts is the same certificate.",
    whenFailed:
      'Mismatched roots make cross-cluster mTLS fail (CERTIFICATE_VERIFY_FAILED / UNKNOWN_CA). The detail names the ' +
      'clusters on another root; give them cacerts from the mesh root (`meshflow drift` re-applies them), then ' +
      'restart their istiod.',
  },
  {
    code: 'MF0103',
    name: 'trust-chain',
    title: "istiod's CA signs certificates that chain to the mesh root",
    domain: 'trust',
    runsOn: "every cluster, asking its primary's istiod",
    proves:
      "A certificate signing request sent to the serving istiod's CA (port 15012, through a port-forward to its pod) " +
      "as a workload of the cluster comes back with the workload's SPIFFE identity, chained through the cluster's " +
      'intermediate to the mesh root held in the trust store.',
    whenFailed:
      'istiod still serves an older CA (restart it after cacerts changed), the trust domain differs from the ' +
      "spec's, or the port-forward was refused (the detail quotes the kubelet; a reader needs " +
      '`create pods/portforward` in istio-system).',
  },
  {
    code: 'MF0201',
    name: 'network-label',
    title: "istio-system carries the cluster's network",
    domain: 'control plane',
    runsOn: 'every cluster',
    proves: "The istio-system namespace is labelled topology.istio.io/network with the cluster's network.",
    whenFailed:
      'Without it istiod cannot tell which endpoints are local. Label it as the hint says, or run `meshflow drift`.',
  },
  {
    code: 'MF0202',
    name: 'istiod-available',
    title: 'istiod is available',
    domain: 'control plane',
    runsOn: 'primaries',
    proves: 'The istiod Deployment of the revision the default tag names reports Available.',
    whenFailed:
      'Image pulls, resources or a crash: `kubectl -n istio-system describe deploy istiod`. A deleted Deployment is ' +
      'put back by `meshflow drift`.',
  },
  {
    code: 'MF0203',
    name: 'eastwest-address',
    title: 'The east-west gateway has an address',
    domain: 'control plane',
    runsOn: 'clusters with an east-west gateway: multi-network meshes',
    proves:
      'The east-west gateway Service has a load balancer address (sidecar meshes), or the istio-east-west Gateway is ' +
      "programmed with an address and labelled for the cluster's network (ambient meshes).",
    whenFailed:
      "A pending load balancer is the cluster's to provide (or set spec.externalIPs on the Service); a Gateway on " +
      'the wrong network or missing is put back by `meshflow drift`.',
  },
  {
    code: 'MF0204',
    name: 'cross-network-gateway',
    title: 'Services are exposed to other networks',
    domain: 'control plane',
    runsOn: 'clusters that expose services: multi-network sidecar meshes',
    proves: 'The Gateway cross-network-gateway listens on 15443 with AUTO_PASSTHROUGH.',
    whenFailed: 'It was changed or deleted by hand: `meshflow drift` re-applies it.',
  },
  {
    code: 'MF0301',
    name: 'remote-secret',
    title: 'Each link reads its source, and only reads',
    domain: 'links',
    runsOn: 'each link target, one result per source it reads',
    proves:
      "istio-remote-secret-<source> is in the target's istio-system, labelled for istiod, and its kubeconfig reads " +
      "the source's services, pods and endpoint slices; its token may not write, escalate, bind or impersonate, " +
      'cluster-wide or in any namespace.',
    whenFailed:
      'A missing or unlabelled secret is re-linked by `meshflow drift`. A rejected token (expired after `extend`?) ' +
      "is too. An unreachable address is the spec's: set clusters[].apiServerAddress. Rights beyond reading come " +
      'from bindings someone else made: the detail lists them.',
  },
  {
    code: 'MF0302',
    name: 'discovery',
    title: 'istiod reads every cluster it should',
    domain: 'links',
    runsOn: 'primaries',
    proves:
      "istiod's own registry (/debug/clusterz, through a port-forward to its pod) lists every cluster it should read " +
      'as synced, and its endpoint shards hold sample endpoints from every cluster that runs them.',
    whenFailed:
      "A cluster istiod does not read: its remote secret is missing or istiod cannot reach the source's API " +
      "server (see MF0301 and istiod's log). `meshflow drift` re-links what it can.",
  },
  {
    code: 'MF0401',
    name: 'cross-network-endpoints',
    title: 'Envoy is told to reach other networks through their gateways',
    domain: "Istio's view",
    runsOn: 'every cluster when the sample has services, in sidecar meshes',
    proves:
      "What istiod hands a sidecar over xDS for each sample service: endpoints of the cluster's own network " +
      "directly, those of other networks through their east-west gateway's address on 15443.",
    whenFailed:
      'A network label, an east-west gateway or a remote secret istiod does not see; the detail names the endpoint ' +
      'and the address it got instead.',
  },
  {
    code: 'MF0402',
    name: 'ambient-workloads',
    title: 'ztunnel is told to reach other networks through their Gateways',
    domain: "Istio's view",
    runsOn: 'every cluster when the sample has services, in ambient meshes',
    proves:
      'What istiod tells a ztunnel of the cluster over Delta xDS (workload addresses): remote-network workloads ' +
      "through their network's east-west Gateway, local ones directly, services bound to the waypoint when the " +
      'spec asks for one.',
    whenFailed:
      'A Gateway not programmed or on another network, istiod without AMBIENT_ENABLE_MULTI_NETWORK, or the ' +
      'waypoint missing: the detail names which. `meshflow drift` re-applies what meshflow made.',
  },
  {
    code: 'MF0403',
    name: 'injection',
    title: "The sample's pods run sidecars of the serving revision",
    domain: "Istio's view",
    runsOn: 'clusters running the sample, in sidecar meshes',
    proves:
      'Every pod of the sample carries an istio-proxy injected by the revision the default tag names, for the ' +
      "cluster's ID and network.",
    whenFailed:
      'Pods that predate the namespace label or an upgrade: restart them (`kubectl rollout restart`), or check ' +
      'that the namespace is labelled istio-injection=enabled.',
  },
  {
    code: 'MF0404',
    name: 'ambient-capture',
    title: "The sample's pods are in the ambient data plane",
    domain: "Istio's view",
    runsOn: 'clusters running the sample, in ambient meshes',
    proves: "The sample's namespaces are labelled istio.io/dataplane-mode=ambient and istio-cni redirected their pods.",
    whenFailed:
      'A namespace out of ambient mode: `meshflow drift` labels it again; pods istio-cni missed need a restart.',
  },
  {
    code: 'MF0405',
    name: 'analyze',
    title: "Istio's own analyzers find nothing",
    domain: "Istio's view",
    runsOn: 'every cluster',
    proves:
      '`istioctl analyze --all-namespaces` (the pinned istioctl) reports no error for the cluster; warnings are ' +
      'counted, not failed.',
    whenFailed: "The detail quotes istioctl's messages (IST codes); each links to Istio's page for it.",
  },
  {
    code: 'MF0501',
    name: 'traffic',
    title: 'Requests reach every cluster that serves the sample',
    domain: 'traffic',
    runsOn: 'each cluster the sample sends from',
    proves:
      "Requests from the sample's client pod (exec through the Kubernetes API) are answered by every cluster the " +
      'sample is placed in. Not supported on clusters on this machine beyond what its exec test double proves: ' +
      'kwok plays their pods.',
    whenFailed:
      'A cluster that never answers: its endpoints are not reached (see MF0401/MF0402 and the east-west gateway, ' +
      'MF0203).',
  },
  {
    code: 'MF0502',
    name: 'ingress',
    title: 'The ingress gateway serves the sample',
    domain: 'traffic',
    runsOn: 'clusters with an ingress gateway',
    proves: "A request to the ingress gateway's address returns the sample's page.",
    whenFailed: 'No address (a load balancer pending), or the gateway routes nowhere: the detail says which.',
  },
];

const BY_CODE = new Map(CHECKS.map((c) => [c.code, c]));
const BY_NAME = new Map(CHECKS.map((c) => [c.name, c]));

export const checkByCode = (code: string): CheckInfo | undefined => BY_CODE.get(code.toUpperCase());
export const checkByName = (name: string): CheckInfo | undefined => BY_NAME.get(name);

/** A result's code: the one it carries, or (results recorded before codes) its name's. */
export const codeOf = (r: { code?: string; name: string }): string | undefined => r.code ?? BY_NAME.get(r.name)?.code;

/** Where a check is documented, from the repository's root. */
export const CHECKS_PAGE = 'docs/checks.md';
export const docsLink = (code: string): string => `${CHECKS_PAGE}#${code.toLowerCase()}`;

/**
 * The codes a list of codes or names selects (`MF0101`, `mf0101`, `cacerts`), in catalog order;
 * throws naming what it does not know, with the codes there are.
 */
export function selectChecks(wanted: readonly string[]): string[] {
  const unknown: string[] = [];
  const codes = new Set<string>();
  for (const w of wanted
    .flatMap((x) => x.split(','))
    .map((x) => x.trim())
    .filter(Boolean)) {
    const c = checkByCode(w) ?? checkByName(w);
    if (c) codes.add(c.code);
    else unknown.push(w);
  }
  if (unknown.length) {
    throw new Error(
      `no check ${unknown.map((u) => JSON.stringify(u)).join(', ')}: give codes (MF0101) or names (cacerts); ` +
        '`meshflow checks` lists them',
    );
  }
  if (!codes.size) throw new Error('no check named: give codes like MF0101, or names like cacerts');
  return CHECKS.filter((c) => codes.has(c.code)).map((c) => c.code);
}

/**
 * The status's checks after a verify of some checks: the fresh results take the place of the
 * earlier results of those codes (where the first of them stood, or at the end), the rest stay.
 */
export function replaceChecks<T extends { code?: string; name: string }>(
  previous: readonly T[],
  fresh: readonly T[],
  codes: readonly string[],
): T[] {
  const out: T[] = [];
  let placed = false;
  for (const r of previous) {
    if (!codes.includes(codeOf(r) ?? '')) out.push(r);
    else if (!placed) {
      out.push(...fresh);
      placed = true;
    }
  }
  return placed ? out : [...out, ...fresh];
}
