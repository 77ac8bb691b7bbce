// Every provider meshflow knows, by id. Deterministic (no Node), so the workflow reads it as the
// schema and the plan do. A provider out of this tree registers itself with one line,
// `registerProvider({ definition, runtime })`, in a module the CLI and the worker load
// (MESHFLOW_PROVIDERS; see docs/providers.md).
import type { ProviderDefinition, ProviderModule, RuntimeFactory } from './contract';

/** The zod meshflow's schema is made with: a provider's settings schema must be made with it too. */
export { z } from 'zod';
import { existingDefinition } from './existing/definition';
import { gkeDefinition } from './gke/definition';
import { localDefinition } from './local/definition';

/** The built-in providers, in the order the plan and the spec reference list them. */
export const BUILTIN_PROVIDERS = [localDefinition, existingDefinition, gkeDefinition] as const;
export type BuiltinProviderId = (typeof BUILTIN_PROVIDERS)[number]['id'];

const registered = new Map<string, ProviderModule>(BUILTIN_PROVIDERS.map((d) => [d.id, { definition: d }]));
let version = 0;

/** Adds a provider; its id must be new (a second registration of the same module is a no-op). */
export function registerProvider(module: ProviderModule): void {
  const id = module.definition.id;
  const known = registered.get(id);
  if (known?.definition === module.definition) return;
  if (known) throw new Error(`a provider "${id}" is registered already`);
  if (!/^[a-z][a-z0-9]{1,19}$/.test(id))
    throw new Error(`provider id "${id}": lowercase letters and digits, a letter first, 2-20 characters`);
  registered.set(id, module);
  version++;
}

/** Changes each time a provider is registered (the spec schema is rebuilt for it). */
export const registryVersion = (): number => version;

export function providerIds(): string[] {
  return [...registered.keys()];
}

export function providerDefinitions(): ProviderDefinition[] {
  return [...registered.values()].map((m) => m.definition);
}

/** The definition of a provider id; an id nobody registered (a spec from a worker with more providers) throws. */
export function providerOf(id: string): ProviderDefinition {
  const m = registered.get(id);
  if (!m) throw new UnknownProviderError(id);
  return m.definition;
}

/** The runtime a provider registered with itself (the built-in ones are in runtimes.ts). */
export function registeredRuntime(id: string): RuntimeFactory | undefined {
  return registered.get(id)?.runtime;
}

export class UnknownProviderError extends Error {
  override name = 'UnknownProviderError';
  constructor(readonly id: string) {
    super(
      `provider "${id}" is not one this build knows (${providerIds().join(', ')}): ` +
        'load its module with MESHFLOW_PROVIDERS, as the worker that ran the mesh did',
    );
  }
}
