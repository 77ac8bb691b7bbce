// Drift detection: what has become of the objects a mesh's steps applied. The baseline is a digest
// per ledger object of the values of the fields meshflow's apply owns, read from the object's own
// managedFields (../drift/fields.ts); a check reads them again and reports each object that is
// gone, no longer ours, or whose owned values changed, with the step to re-run. Digests only:
// nothing of an object's contents (a Secret's data) leaves the cluster.
//
// Reads are few: one LIST per kind and namespace (by the mesh's label) instead of one GET per
// object, and a GET only for what a list lacks (to tell missing from foreign). A cluster that does
// not answer its first request in time is reported unreachable, not thrown.
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type * as k8s from '@kubernetes/client-node';
import {
  FIELD_MANAGER,
  type Kube,
  MANAGED_BY,
  MESH_LABEL,
  describeRef,
  isTransient,
  ownedBy,
  shortError,
} from '../adapters/kube';
import { type ClusterAccess, kubeFor } from '../adapters/providers';
import { type FieldPath, type ManagedFieldsEntry, appliedValues, canonicalJson } from '../drift/fields';
import { type LedgerObject, ledgerObjects } from '../drift/objects';
import type {
  BaselineEntry,
  DriftBaselineRequest,
  DriftBaselineResult,
  DriftCheckRequest,
  DriftItem,
  DriftReport,
} from '../drift/types';
import { type ActivityDeps, accessOf } from './deps';
import { current } from './step';
import type { MeshActivities } from './types';

export interface DriftOptions {
  /** How long a cluster may take to answer its first request before it is reported unreachable (default 10 s). */
  probeTimeoutMs?: number;
  /** Lists and reads in flight at once per cluster (default 8). */
  concurrency?: number;
}

/** The ownership labels: an object without them is foreign, so they are no part of its digest. */
const OWNER_LABELS: FieldPath[] = [MANAGED_BY, MESH_LABEL].map((l) => ['f:metadata', 'f:labels', `f:${l}`]);

/** The digest of the values meshflow's apply owns in an object ('' when meshflow owns nothing in it any more). */
export function digestOf(obj: k8s.KubernetesObject): { digest: string; fields: number } {
  const owned = appliedValues(obj, FIELD_MANAGER, OWNER_LABELS);
  if (!owned) return { digest: '', fields: 0 };
  const digest = createHash('sha256').update(canonicalJson(owned.values)).digest('hex').slice(0, 16);
  return { digest, fields: owned.leaves };
}

/** What a survey found of one ledger object. */
type Seen =
  | { state: 'missing' }
  | { state: 'foreign'; labels: string }
  | { state: 'present'; digest: string; fields: number; managedFields: ManagedFieldsEntry[] };

interface Survey {
  objects: LedgerObject[];
  seen: Map<string, Seen>;
  unreachable: DriftItem[];
  requests: number;
}

interface Run {
  signal: AbortSignal;
  heartbeat: (progress: unknown) => void;
}

/** The activity's cancellation and heartbeat (every second, with the latest progress), or stand-ins outside one. */
async function inActivity<T>(fn: (run: Run) => Promise<T>): Promise<T> {
  const activity = current();
  const signal = activity?.cancellationSignal ?? new AbortController().signal;
  setMaxListeners(0, signal);
  let progress: unknown;
  const beat = () => activity?.heartbeat(progress);
  const timer = setInterval(beat, 1000);
  try {
    return await fn({
      signal,
      heartbeat: (p) => {
        progress = p;
        beat();
      },
    });
  } finally {
    clearInterval(timer);
  }
}

const groupBy = <T>(items: T[], key: (t: T) => string): Map<string, T[]> => {
  const out = new Map<string, T[]>();
  for (const t of items) out.set(key(t), [...(out.get(key(t)) ?? []), t]);
  return out;
};

function seenOf(obj: k8s.KubernetesObject | undefined, mesh: string): Seen {
  if (!obj) return { state: 'missing' };
  if (!ownedBy(obj, mesh)) {
    const labels = obj.metadata?.labels ?? {};
    return {
      state: 'foreign',
      labels: `${MANAGED_BY}=${labels[MANAGED_BY] ?? '(none)'}, ${MESH_LABEL}=${labels[MESH_LABEL] ?? '(none)'}`,
    };
  }
  return {
    state: 'present',
    ...digestOf(obj),
    managedFields: (obj.metadata?.managedFields ?? []) as ManagedFieldsEntry[],
  };
}

/** Reads one cluster's ledger objects; a cluster that cannot be reached is one `unreachable` item. */
async function surveyCluster(
  access: () => Promise<ClusterAccess>,
  mesh: string,
  cluster: string,
  objects: LedgerObject[],
  run: Run,
  opts: Required<DriftOptions>,
  phase: string,
): Promise<Omit<Survey, 'objects'>> {
  const seen = new Map<string, Seen>();
  const unreachable: DriftItem[] = [];
  const clients: Kube[] = [];
  const requests = () => clients.reduce((n, k) => n + k.sent, 0);
  const whole = (reason: string, unchecked: number): DriftItem => ({
    cluster,
    object: '',
    kind: 'unreachable',
    step: '',
    detail: `${unchecked} object(s) not checked: ${reason}`,
  });
  let k: Kube;
  try {
    const a = await access();
    // A first request with a deadline of its own: a cluster that does not answer costs probeTimeoutMs, not
    // every object's retries.
    const timeout = AbortSignal.timeout(opts.probeTimeoutMs);
    const probe = kubeFor(a, AbortSignal.any([run.signal, timeout]));
    clients.push(probe);
    let last: unknown;
    try {
      await probe.requestJson('GET', '/version', undefined, {
        until: Date.now() + opts.probeTimeoutMs,
        onTransient: (err) => (last = err),
      });
    } catch (err) {
      run.signal.throwIfAborted();
      const why = timeout.aborted ? `no answer within ${opts.probeTimeoutMs / 1000}s` : shortError(err);
      throw new Error(last && timeout.aborted ? `${why} (last: ${shortError(last)})` : why);
    }
    k = kubeFor(a, run.signal);
    clients.push(k);
  } catch (err) {
    run.signal.throwIfAborted();
    return {
      seen,
      unreachable: [whole(`cluster ${cluster} is unreachable: ${(err as Error).message}`, objects.length)],
      requests: requests(),
    };
  }

  const groups = [...groupBy(objects, (o) => `${o.ref.apiVersion}/${o.ref.kind}/${o.ref.namespace ?? ''}`).values()];
  let down: string | undefined;
  let checked = 0;
  const readGroup = async (group: LedgerObject[]) => {
    if (down) return;
    try {
      const { apiVersion, kind, namespace } = group[0].ref;
      // One object: one GET. More: one LIST by the mesh's label, then a GET for each the list lacks.
      const listed =
        group.length === 1
          ? new Map<string, k8s.KubernetesObject>()
          : new Map(
              (await k.list(apiVersion, kind, namespace, `${MESH_LABEL}=${mesh}`)).map((o) => [o.metadata!.name!, o]),
            );
      for (const o of group) seen.set(o.key, seenOf(listed.get(o.ref.name) ?? (await k.read(o.ref)), mesh));
    } catch (err) {
      run.signal.throwIfAborted();
      // A cluster that stopped answering: the rest of it is not tried. A definite refusal (403): these objects only.
      if (isTransient(err)) down = shortError(err);
      else {
        for (const o of group) {
          unreachable.push({ cluster, object: o.key, kind: 'unreachable', step: o.step, detail: shortError(err) });
        }
      }
    }
    checked += group.length;
    run.heartbeat({ drift: phase, cluster, checked, of: objects.length });
  };
  for (let i = 0; i < groups.length; i += opts.concurrency) {
    await Promise.all(groups.slice(i, i + opts.concurrency).map(readGroup));
  }
  if (down) {
    const unchecked = objects.filter((o) => !seen.has(o.key) && !unreachable.some((u) => u.object === o.key)).length;
    unreachable.unshift(whole(`cluster ${cluster} stopped answering: ${down}`, unchecked));
  }
  return { seen, unreachable, requests: requests() };
}

async function survey(
  deps: ActivityDeps,
  req: DriftBaselineRequest,
  run: Run,
  opts: Required<DriftOptions>,
  phase: string,
): Promise<Survey> {
  const objects = ledgerObjects(req.ledger);
  const byCluster = groupBy(objects, (o) => o.cluster);
  const parts = await Promise.all(
    [...byCluster].map(([cluster, objs]) =>
      surveyCluster(() => accessOf(deps, req.spec, cluster), req.mesh, cluster, objs, run, opts, phase),
    ),
  );
  return {
    objects,
    seen: new Map(parts.flatMap((p) => [...p.seen])),
    unreachable: parts.flatMap((p) => p.unreachable),
    requests: parts.reduce((n, p) => n + p.requests, 0),
  };
}

const describe = (o: LedgerObject) => `${describeRef(o.ref)} (${o.ref.apiVersion})`;

/** Who wrote the object since the baseline, besides meshflow (managers only, never values). */
function writersSince(managedFields: ManagedFieldsEntry[], since: string): string[] {
  const from = since.slice(0, 19);
  return managedFields
    .filter((e) => e.manager !== FIELD_MANAGER && !e.subresource)
    .filter((e) => ((e as { time?: string }).time ?? '').slice(0, 19) >= from)
    .map((e) => `${e.manager} (${e.operation})`);
}

/** The items of a check: each ledger object compared with its baseline entry. */
function compare(req: DriftCheckRequest, s: Survey): DriftItem[] {
  const items: DriftItem[] = [...s.unreachable];
  for (const o of s.objects) {
    const now = s.seen.get(o.key);
    if (!now) continue;
    const item = { cluster: o.cluster, object: o.key, step: o.step };
    if (now.state === 'missing') {
      items.push({ ...item, kind: 'missing', detail: `${describe(o)} is gone; re-run ${o.step} to apply it again` });
    } else if (now.state === 'foreign') {
      items.push({
        ...item,
        kind: 'foreign',
        detail:
          `${describe(o)} is not mesh ${req.mesh}'s (${now.labels}): meshflow does not overwrite it; ` +
          'remove it, then re-run ' +
          o.step,
      });
    } else {
      const base: BaselineEntry | undefined = req.baseline.objects[o.key];
      if (base?.state !== 'present' || base.digest === now.digest) continue;
      const writers = writersSince(now.managedFields, req.baseline.takenAt);
      const owned = now.digest
        ? `meshflow now owns ${now.fields} of its ${base.fields} field(s)`
        : 'meshflow owns none of its fields any more';
      items.push({
        ...item,
        kind: 'changed',
        detail:
          `${describe(o)}: the values meshflow applied changed (${owned}` +
          `${writers.length ? `; written since the baseline by ${writers.join(', ')}` : ''}); re-run ${o.step}`,
      });
    }
  }
  return items;
}

const DEFAULTS: Required<DriftOptions> = { probeTimeoutMs: 10_000, concurrency: 8 };

export function driftActivities(
  deps: ActivityDeps,
  options: DriftOptions = {},
): Pick<MeshActivities, 'baselineDrift' | 'checkDrift'> {
  const opts = { ...DEFAULTS, ...options };
  return {
    baselineDrift: (req: DriftBaselineRequest): Promise<DriftBaselineResult> =>
      inActivity(async (run) => {
        const takenAt = new Date().toISOString();
        const s = await survey(deps, req, run, opts, 'baseline');
        const objects: Record<string, BaselineEntry> = {};
        for (const o of s.objects) {
          const seen = s.seen.get(o.key);
          if (!seen) continue;
          objects[o.key] =
            seen.state === 'present'
              ? { step: o.step, cluster: o.cluster, state: 'present', digest: seen.digest, fields: seen.fields }
              : { step: o.step, cluster: o.cluster, state: seen.state };
        }
        return { baseline: { takenAt, objects }, requests: s.requests, unreachable: s.unreachable };
      }),
    checkDrift: (req: DriftCheckRequest): Promise<DriftReport> =>
      inActivity(async (run) => {
        const checkedAt = new Date().toISOString();
        const s = await survey(deps, req, run, opts, 'check');
        return { checkedAt, objects: s.objects.length, requests: s.requests, items: compare(req, s) };
      }),
  };
}
