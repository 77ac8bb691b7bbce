// Specs travel inside workflow inputs, so a mesh started by an earlier meshflow carries a spec
// parsed by an earlier schema: fields added since are absent, not defaulted. The workflow fills
// them in (to what the schema's defaults would be) before anything reads them. Pure: runs in
// workflow code.
import type { MeshSpec } from './schema';

type Recorded = Omit<MeshSpec, 'trust' | 'app'> & { trust?: MeshSpec['trust']; app: Omit<MeshSpec['app'], 'manifests'> & { manifests?: MeshSpec['app']['manifests'] } };

export function upgradeSpec(spec: Recorded): MeshSpec {
  return { ...spec, trust: spec.trust ?? {}, app: { ...spec.app, manifests: spec.app.manifests ?? [] } };
}
