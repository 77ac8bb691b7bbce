export { provisionMesh } from './mesh';
