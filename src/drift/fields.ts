// The fields a field manager owns in an object, read from the object's own managedFields: a walk
// of the server-side apply field set (structured-merge-diff's FieldsV1) that takes from the
// object exactly the values at those paths. What another manager took over (kubectl edit, label
// --overwrite, a patch) leaves the set, so the values change; what controllers write (status,
// defaults, their own annotations) was never in it. Pure: no I/O, safe in workflow code.

/**
 * A FieldsV1 set: `f:<name>` a field of a map, `k:<json>` a list item by its key fields, `v:<json>`
 * a member of a set-like list, `i:<n>` a list item by index, `.` the node itself. An empty set
 * under a key is a leaf: the whole value there is owned (a scalar, or an atomic map or list).
 */
export interface FieldSet {
  [key: string]: FieldSet;
}

export interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  subresource?: string;
  fieldsType?: string;
  fieldsV1?: FieldSet;
}

/** A path of set keys as in FieldsV1 (`['f:metadata', 'f:labels', 'f:app']`): excluded with what is under it. */
export type FieldPath = string[];

export interface OwnedValues {
  /** The owned values, shaped like the set: keys are the set's keys, leaves the object's values. */
  values: Record<string, unknown>;
  /** Leaves found in the object. */
  leaves: number;
}

/** JSON with every map's keys sorted: equal values give equal text. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The list item a `k:` key names: every key field equal. */
function itemByKey(list: unknown[], key: Record<string, unknown>): unknown {
  const want = Object.entries(key).map(([k, v]) => [k, canonicalJson(v)] as const);
  return list.find((item) => isMap(item) && want.every(([k, v]) => canonicalJson(item[k]) === v));
}

/** The value under one set key, or undefined when the object has none there. */
function child(value: unknown, key: string): unknown {
  const kind = key.slice(0, 2);
  const rest = key.slice(2);
  if (kind === 'f:') return isMap(value) ? value[rest] : undefined;
  if (!Array.isArray(value)) return undefined;
  if (kind === 'i:') return value[Number(rest)];
  let parsed: unknown;
  try {
    parsed = JSON.parse(rest);
  } catch {
    return undefined; // not a key this walker knows: owned but unreadable, so left out
  }
  if (kind === 'k:') return isMap(parsed) ? itemByKey(value, parsed) : undefined;
  if (kind === 'v:') return value.some((v) => canonicalJson(v) === canonicalJson(parsed)) ? true : undefined;
  return undefined;
}

/** A node owned only as itself (`.` alone): its scalar value, or only its type for a map or list. */
const presence = (value: unknown): unknown => (Array.isArray(value) ? '[]' : isMap(value) ? '{}' : value);

/**
 * The values `set` owns in `value`, with the paths in `exclude` left out. A path the set names
 * but the object lacks is left out too (and so changes the result).
 */
export function ownedValues(value: unknown, set: FieldSet, exclude: FieldPath[] = []): OwnedValues {
  const excluded = new Set(exclude.map((p) => JSON.stringify(p)));
  let leaves = 0;
  const walk = (v: unknown, s: FieldSet, path: string[]): unknown => {
    const keys = Object.keys(s).filter((k) => k !== '.');
    if (!keys.length) {
      leaves++;
      return '.' in s ? presence(v) : v;
    }
    const out: Record<string, unknown> = {};
    for (const k of keys.sort()) {
      const p = [...path, k];
      if (excluded.has(JSON.stringify(p))) continue;
      const c = child(v, k);
      if (c === undefined) continue;
      out[k] = walk(c, s[k], p);
    }
    return out;
  };
  return { values: walk(value, set, []) as Record<string, unknown>, leaves };
}

/** An object as the API server returns it: managedFields entries as ManagedFieldsEntry. */
export interface ManagedObject {
  kind?: string;
  metadata?: { managedFields?: unknown[] };
}

/** The set a manager's apply left in an object (operation Apply, not on a subresource), if any. */
export function appliedFieldSet(obj: ManagedObject, manager: string): FieldSet | undefined {
  const entries = (obj.metadata?.managedFields ?? []) as ManagedFieldsEntry[];
  const entry = entries.find(
    (e) => e.manager === manager && e.operation === 'Apply' && !e.subresource && e.fieldsType === 'FieldsV1',
  );
  return entry?.fieldsV1;
}

/** Paths no digest should cover: bookkeeping the server changes on every write. */
export const BOOKKEEPING: FieldPath[] = [
  ['f:metadata', 'f:managedFields'],
  ['f:metadata', 'f:resourceVersion'],
  ['f:metadata', 'f:generation'],
];

/**
 * The values a manager's apply owns in an object, or undefined when the manager never applied it.
 * A Secret applied with `stringData` keeps `f:stringData` in the set while the server stores the
 * values under `data`: those keys are read from `data`.
 */
export function appliedValues(obj: ManagedObject, manager: string, exclude: FieldPath[] = []): OwnedValues | undefined {
  let set = appliedFieldSet(obj, manager);
  if (!set) return undefined;
  const stored = obj as { stringData?: unknown };
  if (obj.kind === 'Secret' && set['f:stringData'] && stored.stringData === undefined) {
    const { 'f:stringData': fromString, ...others } = set;
    set = { ...others, 'f:data': { ...(others['f:data'] ?? {}), ...fromString } };
  }
  return ownedValues(obj, set, [...BOOKKEEPING, ...exclude]);
}
