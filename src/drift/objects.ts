// Which Kubernetes objects a mesh's ledger says it applied, each under a stable key and with the
// step to re-run when it drifts. Pure.
import type { LedgerEntry, ObjectRef } from '../steps/contract';

/** cluster/apiVersion/kind/namespace/name (namespace empty for cluster-scoped objects): stable across runs. */
export const objectKey = (cluster: string, ref: ObjectRef): string =>
  `${cluster}/${ref.apiVersion}/${ref.kind}/${ref.namespace ?? ''}/${ref.name}`;

export interface LedgerObject {
  key: string;
  cluster: string;
  ref: ObjectRef;
  /** The last step that applied it: its apply is the one the object should look like. */
  step: string;
}

/** Every object of the ledger once, in ledger order (the order steps made them). */
export function ledgerObjects(ledger: LedgerEntry[]): LedgerObject[] {
  const byKey = new Map<string, LedgerObject>();
  for (const entry of ledger) {
    if (entry.resource.type !== 'objects') continue;
    const { cluster, objects } = entry.resource;
    for (const ref of objects) {
      const key = objectKey(cluster, ref);
      const known = byKey.get(key);
      if (known) known.step = entry.step;
      else byKey.set(key, { key, cluster, ref, step: entry.step });
    }
  }
  return [...byKey.values()];
}
