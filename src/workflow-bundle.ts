// What a worker bundles into Temporal's workflow sandbox: every workflow meshflow runs (the
// mesh's, a scheduled mesh's, the sweep's), from the folders that own them.
export { provisionMesh } from './workflows/mesh';
export { scheduledMesh } from './workflows/scheduled-mesh';
export { sweepMeshes } from './sweep/workflow';
