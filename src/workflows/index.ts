export { provisionMesh } from './mesh';
export { sweepMeshes } from '../sweep/workflow';
export { scheduledMesh } from './scheduled-mesh';
