// Specs travel inside workflow inputs, so a mesh started by an earlier meshflow carries a spec
// parsed by an earlier schema: fields added since are absent, not defaulted, and fields removed
// since are still there. The workflow fills in the first (to what the schema's defaults would be)
// and drops the second before anything reads them. Pure: runs in workflow code.
import { ISTIO_DEFAULT_VERSION, ISTIO_VERSION_PATTERN } from '../istio/version';
import { DEFAULT_INTERMEDIATE_VALIDITY, DEFAULT_ROTATE_BEFORE } from './duration';
import type { MeshSpec } from './schema';

type Recorded = Omit<MeshSpec, 'trust' | 'app' | 'verify' | 'addons' | 'drift' | 'istio'> & {
  istio: Omit<MeshSpec['istio'], 'dataPlane'> & Partial<Pick<MeshSpec['istio'], 'dataPlane'>>;
  addons?: MeshSpec['addons'];
  drift?: Partial<MeshSpec['drift']>;
  trust?: Omit<MeshSpec['trust'], 'keyAlgorithm' | 'intermediateValidity' | 'rotateBefore'> &
    Partial<Pick<MeshSpec['trust'], 'keyAlgorithm' | 'intermediateValidity' | 'rotateBefore'>>;
  app: Omit<MeshSpec['app'], 'manifests'> & { manifests?: MeshSpec['app']['manifests'] };
  /** controlPlane: removed (the control-plane checks always ran; nothing read it). */
  verify: MeshSpec['verify'] & { controlPlane?: boolean };
};

export function upgradeSpec(spec: Recorded): MeshSpec {
  const { controlPlane: _removed, ...verify } = spec.verify;
  return {
    ...spec,
    // Earlier versions made every CA key RSA 4096: a mesh they started keeps that (new specs get the schema's default).
    trust: {
      ...spec.trust,
      keyAlgorithm: spec.trust?.keyAlgorithm ?? 'rsa-4096',
      // Intermediates made before this setting live ten years; those made from now on (a rotation) the default.
      intermediateValidity: spec.trust?.intermediateValidity ?? DEFAULT_INTERMEDIATE_VALIDITY,
      rotateBefore: spec.trust?.rotateBefore ?? DEFAULT_ROTATE_BEFORE,
    },
    app: { ...spec.app, manifests: spec.app.manifests ?? [] },
    // Earlier specs named only the line ("1.31"); images need a release.
    istio: {
      ...spec.istio,
      version: ISTIO_VERSION_PATTERN.test(spec.istio.version) ? spec.istio.version : ISTIO_DEFAULT_VERSION,
      // Meshes started before ambient meshes existed run sidecars.
      dataPlane: spec.istio.dataPlane ?? 'sidecar',
    },
    verify,
    addons: spec.addons ?? [],
    // The schema's defaults; a mesh started before drift detection only uses them once its
    // workflow has drift detection (see PATCH_V4 in ../workflows/mesh.ts).
    drift: { every: spec.drift?.every ?? '10m', repair: spec.drift?.repair ?? true },
  };
}
