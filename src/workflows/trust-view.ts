// What a mesh's trust looks like from its status: the root, each cluster's intermediate (which
// generation, until when, when it rotates) and each reader token's expiry. Pure: the workflow's
// status query computes it, clients render it; nothing here is secret (fingerprints and dates).
import { DEFAULT_ROTATE_BEFORE, parseDuration } from '../spec/duration';
import type { MeshSpec } from '../spec/schema';
import type { StepStatus, TrustStatus } from './types';

export type { TrustStatus } from './types';

export function trustStatus(spec: MeshSpec, steps: StepStatus[], nowMs: number): TrustStatus {
  const rootStep = steps.find((s) => s.kind === 'root-ca')?.outputs;
  const rotateBefore = spec.trust.rotateBefore ?? DEFAULT_ROTATE_BEFORE;
  const before = parseDuration(rotateBefore === 'off' ? DEFAULT_ROTATE_BEFORE : rotateBefore)!;
  const intermediates = steps
    .filter((s) => s.kind === 'cacerts' && s.cluster && s.outputs?.caNotAfter)
    .map((s) => {
      const o = s.outputs!;
      const rotateAt = new Date(Date.parse(o.caNotAfter) - before).toISOString();
      return {
        cluster: s.cluster!,
        generation: Number(o.caGeneration ?? '1'),
        notAfter: o.caNotAfter,
        ...(o.caFingerprint ? { fingerprint: o.caFingerprint } : {}),
        ...(o.rotatedAt ? { rotatedAt: o.rotatedAt } : {}),
        ...(rotateBefore !== 'off' ? { rotateAt } : {}),
      };
    });
  return {
    ...(rootStep
      ? {
          root: {
            ...(rootStep.rootNotAfter ? { notAfter: rootStep.rootNotAfter } : {}),
            ...(rootStep.rootFingerprint ? { fingerprint: rootStep.rootFingerprint } : {}),
            ...(rootStep.root ? { source: rootStep.root } : {}),
          },
        }
      : {}),
    intermediates,
    readers: steps
      .filter((s) => s.kind === 'link' && s.outputs?.tokenExpiresAt)
      .map((s) => ({
        source: s.cluster!,
        target: s.target!,
        expiresAt: s.outputs!.tokenExpiresAt,
        ...(s.outputs!.tokenRenewAt ? { renewAt: s.outputs!.tokenRenewAt } : {}),
        ...(s.outputs!.rotatedAt ? { rotatedAt: s.outputs!.rotatedAt } : {}),
      })),
    rotateBefore,
    due: intermediates.filter((i) => Date.parse(i.notAfter) - before <= nowMs).map((i) => i.cluster),
  };
}
