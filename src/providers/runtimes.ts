// The worker's half of every provider: the built-in providers' runtimes by id, and the runtime a
// provider registered with itself. Node only (the workflow reads registry.ts).
import type { ClusterProvider, ProviderEnv, RuntimeFactory } from './contract';
import { existingRuntime } from './existing/runtime';
import { gkeRuntime } from './gke/runtime';
import { localRuntime } from './local/runtime';
import { type BuiltinProviderId, providerIds, registeredRuntime } from './registry';

const BUILTIN_RUNTIMES: Record<BuiltinProviderId, RuntimeFactory> = {
  local: localRuntime,
  existing: existingRuntime,
  gke: gkeRuntime,
};

/** The runtime factory of a registered provider: its own, or the built-in one. */
function factoryOf(id: string): RuntimeFactory {
  const factory = registeredRuntime(id) ?? BUILTIN_RUNTIMES[id as BuiltinProviderId];
  if (!factory) throw new Error(`provider "${id}" registered no runtime`);
  return factory;
}

/** Every registered provider's runtime, built in registry order (a later one may use an earlier one's). */
export function providerRuntimes(env: Omit<ProviderEnv, 'providers'>): Record<string, ClusterProvider> {
  const providers: Record<string, ClusterProvider> = {};
  for (const id of providerIds()) {
    providers[id] = factoryOf(id)({ ...env, providers });
  }
  return providers;
}

/** One provider's runtime (the CLI's gc, which needs only the cloud it searches). */
export function providerRuntime(id: string, env: Omit<ProviderEnv, 'providers'>): ClusterProvider {
  return factoryOf(id)({ ...env, providers: {} });
}
