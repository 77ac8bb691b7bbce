// The port behind which a mesh's trust material lives: its root CA and every cluster's
// intermediate CA, as named PEM entries per mesh. Where they live decides which workers can run
// a mesh's trust steps: the state directory of one host, or Secrets of a management cluster that
// every worker reads. Entries never travel through workflow history; only the ledger resource does.
import type { MeshEntries } from '../istio/trust';
import type { Resource } from '../steps/contract';
import { PermanentError } from '../util/errors';

/** An entry's name: segments of lowercase letters, digits, '.' and '-', joined by '/' (e.g. `east/ca-key.pem`). */
export const ENTRY_NAME = /^[a-z0-9][a-z0-9.-]*(\/[a-z0-9][a-z0-9.-]*)*$/;

export interface TrustStore {
  /** Where the entries are kept, for messages: a directory or a namespace, never a secret. */
  readonly where: string;
  /** Every worker configured alike reaches these entries (not one host's disk). */
  readonly shared: boolean;
  /** One entry of a mesh, or undefined when it is not there. */
  get(mesh: string, name: string, signal?: AbortSignal): Promise<string | undefined>;
  /**
   * Stores `entries` together unless all of them are there already, and answers what is stored
   * under their names afterwards: these values, or those an earlier or concurrent writer stored
   * first (then these are dropped). All of them or none: two attempts that each made a CA end
   * with one CA, whose key and certificate belong together.
   */
  putIfAbsent(mesh: string, entries: Record<string, string>, signal?: AbortSignal): Promise<Record<string, string>>;
  /** The names of a mesh's entries (none when it has none). */
  list(mesh: string, signal?: AbortSignal): Promise<string[]>;
  /**
   * Removes these entries of a mesh (those that are there), and the mesh's place in the store when
   * no entry is left: what a start that failed had copied in, without touching the other entries.
   */
  removeEntries(mesh: string, names: string[], signal?: AbortSignal): Promise<void>;
  /** Removes every entry of a mesh, and nothing of any other mesh; nothing to remove is fine. */
  deleteMesh(mesh: string, signal?: AbortSignal): Promise<void>;
  /** What a mesh's ledger records when its entries are made here, so that its undo removes them. */
  ledgerResource(mesh: string): Resource;
}

/** One mesh's entries, as the CA code reads and writes them (istio/trust.ts says what it needs). */
export type { MeshEntries } from '../istio/trust';

export function meshEntries(store: TrustStore, mesh: string): MeshEntries {
  return {
    get: (name, signal) => store.get(mesh, name, signal),
    putIfAbsent: (entries, signal) => store.putIfAbsent(mesh, entries, signal),
    list: (signal) => store.list(mesh, signal),
    remove: (names, signal) => store.removeEntries(mesh, names, signal),
  };
}

export function checkEntryNames(names: string[]): void {
  const bad = names.filter((n) => !ENTRY_NAME.test(n));
  if (bad.length) throw new PermanentError(`trust store entry names must match ${ENTRY_NAME}: ${bad.join(', ')}`);
}
