export { provisionMesh } from './mesh';
export { sweepMeshes } from './sweep';
export { scheduledMesh } from './scheduled-mesh';
