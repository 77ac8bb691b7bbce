// Providers out of this tree: MESHFLOW_PROVIDERS names their modules (absolute or relative paths,
// comma-separated), each of which registers itself with registerProvider on load. The CLI loads
// them before it reads a spec, the worker before it builds its runtimes, and the worker's workflow
// bundle imports them ahead of the workflows (workflowsEntry), so all three know the same ids.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const loaded: string[] = [];

/** Loads each module (once); a path that does not load stops the command, naming the variable. */
export function loadProviderModules(spec = process.env.MESHFLOW_PROVIDERS ?? ''): string[] {
  for (const entry of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    let file: string;
    try {
      file = require.resolve(path.resolve(entry));
      if (loaded.includes(file)) continue;
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a module named at run time
      require(file);
    } catch (err) {
      throw new Error(`MESHFLOW_PROVIDERS: ${entry} did not load: ${(err as Error).message.split('\n')[0]}`);
    }
    loaded.push(file);
  }
  return [...loaded];
}

/** The provider modules loaded so far. */
export const loadedProviderModules = (): string[] => [...loaded];

/**
 * Bundler options for a generated entry: it lies outside the package, so webpack is told where
 * meshflow's node_modules are (the SDK's own imports and the workflows' resolve there).
 */
export function entryBundlerOptions(entry: string, workflows: string) {
  if (entry === workflows) return {};
  const modules = path.resolve(require.resolve('@temporalio/workflow/package.json'), '..', '..', '..');
  return {
    bundlerOptions: {
      webpackConfigHook: (config: { resolve?: { modules?: string[] } }) => ({
        ...config,
        resolve: { ...config.resolve, modules: [...(config.resolve?.modules ?? ['node_modules']), modules] },
      }),
    },
  };
}

/**
 * The module the worker bundles its workflows from: the workflows themselves, or, with providers
 * loaded, a small entry (under the temporary directory, named by its content) that imports them first.
 */
export function workflowsEntry(workflows: string): string {
  if (!loaded.length) return workflows;
  const text =
    '// Made by meshflow: the workflows, with the providers MESHFLOW_PROVIDERS names registered first.\n' +
    loaded.map((m) => `require(${JSON.stringify(m)});\n`).join('') +
    `module.exports = require(${JSON.stringify(workflows)});\n`;
  const dir = path.join(os.tmpdir(), `meshflow-workflows-${process.getuid?.() ?? 'user'}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `${createHash('sha256').update(text).digest('hex').slice(0, 16)}.js`);
  if (!fs.existsSync(file)) fs.writeFileSync(file, text, { mode: 0o600 });
  return file;
}
