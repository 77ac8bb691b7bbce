export { provisionMesh } from './mesh';
export { sweepMeshes } from './sweep';
