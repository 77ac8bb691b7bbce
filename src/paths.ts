// Where meshflow keeps things outside the repository: built tools in the cache directory, live
// local clusters and the local Temporal database in the state directory.
import os from 'node:os';
import path from 'node:path';

/** The package root (this file compiles to dist/paths.js and is run from src/ by the tests). */
export const packageRoot = path.resolve(__dirname, '..');

export function cacheDir(): string {
  if (process.env.MESHFLOW_CACHE_DIR) return path.resolve(process.env.MESHFLOW_CACHE_DIR);
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'meshflow');
}

export function toolsDir(): string {
  return path.join(cacheDir(), 'tools');
}

export function stateDir(): string {
  if (process.env.MESHFLOW_STATE_DIR) return path.resolve(process.env.MESHFLOW_STATE_DIR);
  const base = process.env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'meshflow');
}

/** The team deployment's folder (`meshflow team`): MESHFLOW_TEAM_DIR, else `team` in the state directory. */
export function teamDir(): string {
  return process.env.MESHFLOW_TEAM_DIR ? path.resolve(process.env.MESHFLOW_TEAM_DIR) : path.join(stateDir(), 'team');
}
