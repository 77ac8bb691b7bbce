// What drift detection exchanges with the mesh workflow: the baseline taken after a run, the
// report of a check, and the requests of both activities. Types only: workflow code imports them.
// Nothing here holds an object's contents, only digests of them.
import type { MeshSpec } from '../spec/schema';
import type { LedgerEntry } from '../steps/contract';

export interface DriftBaselineRequest {
  mesh: string;
  spec: MeshSpec;
  /** The workflow's ledger: every `objects` entry names what a step applied, and which step. */
  ledger: LedgerEntry[];
}

/** One ledger object as the baseline saw it. */
export interface BaselineEntry {
  /** The ledger step that last applied the object: the one to re-run to repair it. */
  step: string;
  cluster: string;
  /** Ours and in place: the digest of the values of the fields meshflow owns. */
  digest?: string;
  /** How many fields meshflow owns in it (leaves of its field set, exclusions left out). */
  fields?: number;
  /** Not ours when the baseline was taken: there is nothing to compare a later check with. */
  state: 'present' | 'missing' | 'foreign';
}

export interface DriftBaseline {
  takenAt: string;
  /** By object key (see objectKey): cluster/apiVersion/kind/namespace/name. */
  objects: Record<string, BaselineEntry>;
}

export interface DriftBaselineResult {
  baseline: DriftBaseline;
  /** Kubernetes requests made. */
  requests: number;
  /** Clusters (or objects) that could not be read: their objects have no baseline entry. */
  unreachable: DriftItem[];
}

export interface DriftCheckRequest extends DriftBaselineRequest {
  baseline: DriftBaseline;
}

export type DriftKind = 'missing' | 'changed' | 'foreign' | 'unreachable';

export interface DriftItem {
  cluster: string;
  /** The object key; '' for a whole cluster that could not be reached. */
  object: string;
  kind: DriftKind;
  /** The ledger step that owns the object (the one to re-run); '' when none is known (a whole cluster). */
  step: string;
  detail: string;
}

export interface DriftReport {
  checkedAt: string;
  /** Ledger objects, those of unreachable clusters included. */
  objects: number;
  /** Kubernetes requests made (discovery and retries included). */
  requests: number;
  items: DriftItem[];
}
