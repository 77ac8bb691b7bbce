// What the reader token of a remote secret may do that it must not: the remote-secret check
// (MF0301) asks the source cluster, cluster-wide and namespace by namespace.
import type * as k8s from '@kubernetes/client-node';
import type { Heartbeat } from '../adapters/kube';
import type { Call } from './result';
import { Agents, type Attempts, DEFAULTS, type VerifyOptions, clients, retrying } from './run';

export interface Permission {
  verb: string;
  group: string;
  resource: string;
}

const WRITE_VERBS = ['create', 'update', 'patch', 'delete', 'deletecollection'];
const GUARDED_RESOURCES = [
  { group: '', resource: 'pods' },
  { group: '', resource: 'services' },
  { group: '', resource: 'secrets' },
  { group: '', resource: 'namespaces' },
  { group: '', resource: 'serviceaccounts' },
  { group: 'apps', resource: 'deployments' },
];
const RBAC_GROUP = 'rbac.authorization.k8s.io';

/**
 * What a reader token may not do: write the kinds a leaked token could do harm with, grant itself
 * rights, or act as someone else.
 */
export const FORBIDDEN: Permission[] = [
  ...WRITE_VERBS.flatMap((verb) => GUARDED_RESOURCES.map((r) => ({ verb, ...r }))),
  ...['escalate', 'bind'].flatMap((verb) =>
    ['roles', 'clusterroles'].map((resource) => ({ verb, group: RBAC_GROUP, resource })),
  ),
  ...['users', 'groups', 'serviceaccounts'].map((resource) => ({ verb: 'impersonate', group: '', resource })),
];

/**
 * Whether a grant in one namespace (a RoleBinding there) gives this permission. Not for requests
 * that are cluster-scoped whatever the binding: creating namespaces or deleting them wholesale,
 * escalating ClusterRoles, impersonating users and groups. Updating, patching or deleting a
 * namespace is authorized in that namespace; binding a ClusterRole in a RoleBinding is, too.
 */
export function grantableInNamespace(p: Permission): boolean {
  if (p.resource === 'namespaces') return ['update', 'patch', 'delete'].includes(p.verb);
  if (p.verb === 'impersonate') return p.resource === 'serviceaccounts';
  if (p.resource === 'clusterroles') return p.verb === 'bind';
  return true;
}

const matches = (list: string[] | undefined, value: string) => !!list && (list.includes('*') || list.includes(value));

/** Whether a rule (from a SelfSubjectRulesReview) allows a permission; rules limited to resourceNames count too. */
export function ruleAllows(rule: k8s.V1ResourceRule, p: Permission): boolean {
  return matches(rule.verbs, p.verb) && matches(rule.apiGroups, p.group) && matches(rule.resources, p.resource);
}

const permissionText = (p: Permission) => `${p.verb} ${p.resource}`;

export interface ReaderRights {
  /** Forbidden permissions the token has across the cluster (every namespace, or cluster-scoped). */
  cluster: Permission[];
  /** Forbidden permissions granted in single namespaces only, by namespace. */
  namespaces: Map<string, Permission[]>;
  /** Namespaces reviewed. */
  reviewed: number;
  /** Namespaces whose rules review was incomplete or had an evaluation error: asked permission by permission. */
  fallback: string[];
  /** API requests made (retries not counted). */
  requests: number;
}

/**
 * The forbidden permissions the reader has in its cluster. Cluster scope: one
 * SelfSubjectAccessReview per forbidden permission (namespace ""). Each namespace (listed with
 * `admin`): one SelfSubjectRulesReview, matched here against the permissions a namespace grant
 * can give; where the review is `incomplete` (rules an authorizer cannot list) or has an
 * `evaluationError` (a binding RBAC could not resolve), one SelfSubjectAccessReview per such
 * permission in that namespace.
 */
export async function readerRights(
  reader: k8s.AuthorizationV1Api,
  admin: k8s.CoreV1Api,
  call: Call,
  options: VerifyOptions = {},
  progress: (done: number, of: number) => void = () => undefined,
): Promise<ReaderRights> {
  const opts = { ...DEFAULTS, ...options };
  let requests = 0;
  const access = async (p: Permission, namespace?: string, name?: string) => {
    requests++;
    const resourceAttributes = {
      verb: p.verb,
      group: p.group,
      resource: p.resource,
      ...(namespace ? { namespace } : {}),
      ...(name ? { name } : {}),
    };
    const review = await call(() => reader.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes } } }));
    return review.status?.allowed === true;
  };
  const pool = async <T, R>(items: T[], fn: (item: T) => Promise<R>): Promise<R[]> => {
    const out: R[] = new Array(items.length);
    let next = 0;
    let failed = false;
    const worker = async () => {
      // After a failure the other workers stop taking items: the check's answer is settled.
      while (!failed && next < items.length) {
        const i = next++;
        try {
          out[i] = await fn(items[i]);
        } catch (err) {
          failed = true;
          throw err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(opts.concurrency, items.length) }, worker));
    return out;
  };

  const allowed = await pool(FORBIDDEN, async (p) => ((await access(p)) ? p : undefined));
  const clusterWide = allowed.filter((p): p is Permission => !!p);
  const held = new Set(clusterWide.map(permissionText));
  const inNamespace = FORBIDDEN.filter((p) => grantableInNamespace(p) && !held.has(permissionText(p)));

  const names: string[] = [];
  let cont: string | undefined;
  do {
    requests++;
    const page = await call(() => admin.listNamespace({ limit: 500, ...(cont ? { _continue: cont } : {}) }));
    names.push(...page.items.map((n) => n.metadata!.name!));
    cont = page.metadata?._continue || undefined;
  } while (cont);

  const namespaces = new Map<string, Permission[]>();
  const fallback: string[] = [];
  let done = 0;
  await pool(names, async (namespace) => {
    requests++;
    const review = await call(() => reader.createSelfSubjectRulesReview({ body: { spec: { namespace } } }));
    let granted: Permission[];
    // Incomplete (an authorizer that cannot list rules) or an evaluation error (a binding that
    // could not be resolved): the rules may be partial, so ask about each permission instead.
    if (review.status?.incomplete || review.status?.evaluationError) {
      fallback.push(namespace);
      granted = [];
      for (const p of inNamespace) {
        if (await access(p, namespace, p.resource === 'namespaces' ? namespace : undefined)) granted.push(p);
      }
    } else {
      const rules = review.status?.resourceRules ?? [];
      granted = inNamespace.filter((p) => rules.some((r) => ruleAllows(r, p)));
    }
    if (granted.length) namespaces.set(namespace, granted);
    if (++done % 25 === 0 || done === names.length) progress(done, names.length);
  });
  return { cluster: clusterWide, namespaces, reviewed: names.length, fallback: fallback.sort(), requests };
}

/**
 * readerRights as the remote-secret check runs it: the reader's and an admin's kubeconfig, API
 * clients with request timeouts and keep-alive connections, transient errors retried.
 */
export async function reviewReader(
  reader: k8s.KubeConfig,
  admin: k8s.KubeConfig,
  options: VerifyOptions = {},
  heartbeat: Heartbeat = () => undefined,
): Promise<ReaderRights> {
  const opts = { ...DEFAULTS, ...options };
  const agents = new Agents();
  try {
    const a: Attempts = { opts, heartbeat, label: 'reader rights', retries: 0 };
    const call: Call = (f) => retrying(a, f);
    return await readerRights(clients(reader, opts, agents).auth, clients(admin, opts, agents).core, call, opts);
  } finally {
    agents.destroy();
  }
}

/** "delete secrets in cluster1; delete pods, impersonate serviceaccounts in namespace istio-system of cluster1". */
export function rightsText(rights: Pick<ReaderRights, 'cluster' | 'namespaces'>, source: string): string {
  const parts: string[] = [];
  if (rights.cluster.length) parts.push(`${rights.cluster.map(permissionText).join(', ')} in ${source}`);
  // Namespaces with the same grants are named together.
  const byGrants = new Map<string, string[]>();
  for (const [ns, perms] of [...rights.namespaces].sort(([a], [b]) => a.localeCompare(b))) {
    const key = perms.map(permissionText).join(', ');
    byGrants.set(key, [...(byGrants.get(key) ?? []), ns]);
  }
  for (const [grants, nss] of byGrants) {
    const shown = nss.length > 5 ? `${nss.slice(0, 5).join(', ')} and ${nss.length - 5} more` : nss.join(', ');
    parts.push(`${grants} in namespace${nss.length > 1 ? 's' : ''} ${shown} of ${source}`);
  }
  return parts.join('; ');
}
