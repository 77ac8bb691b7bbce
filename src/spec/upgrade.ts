// Specs travel inside workflow inputs, so a mesh started by an earlier meshflow carries a spec
// parsed by an earlier schema: fields added since are absent, not defaulted. The workflow fills
// them in (to what the schema's defaults would be) before anything reads them. Pure: runs in
// workflow code.
import { ISTIO_DEFAULT_VERSION, ISTIO_VERSION_PATTERN } from '../istio/version';
import type { MeshSpec } from './schema';

type Recorded = Omit<MeshSpec, 'trust' | 'app'> & { trust?: MeshSpec['trust']; app: Omit<MeshSpec['app'], 'manifests'> & { manifests?: MeshSpec['app']['manifests'] } };

export function upgradeSpec(spec: Recorded): MeshSpec {
  return {
    ...spec,
    trust: spec.trust ?? {},
    app: { ...spec.app, manifests: spec.app.manifests ?? [] },
    // Earlier specs named only the line ("1.31"); images need a release.
    istio: { ...spec.istio, version: ISTIO_VERSION_PATTERN.test(spec.istio.version) ? spec.istio.version : ISTIO_DEFAULT_VERSION },
  };
}
