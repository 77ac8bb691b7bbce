// The Istio build of a spec's istio.version, for a worker: its istioctl, addon manifests and
// pilot-discovery. The worker starts with the default line's; another line's build is found in the
// tool cache or built there on first use (minutes of compilation, reported as progress and as the
// asking step's heartbeats), once for every step and worker process waiting for it.
import path from 'node:path';
import { istioBuildOf, ISTIO_LINES } from '../istio/version';
import { PermanentError } from '../util/errors';
import { type Progress, formatDuration, stderrProgress } from '../util/progress';
import { GATEWAY_API_CRDS, ISTIO_ADDONS_DIR, ToolSetupError, ensureTools } from './install';
import { istioToolName, toolSpec } from './specs';

export interface IstioTools {
  istioctl: string;
  /** Istio's addon manifests (`<addon>.yaml`) of the same build. */
  addons: string;
  /** The Gateway API CRDs (one YAML file) the build wants: ambient meshes apply them. */
  gatewayApiCrds: string;
  pilotDiscovery: string;
}

/** The step asking: heartbeated every few seconds while the build is made; its cancel stops the wait, not the build. */
export interface Asking {
  heartbeat: (details: unknown) => void;
  signal?: AbortSignal;
}

/** The tools of the build that installs `version`. */
export type IstioToolsOf = (version: string, step: Asking) => Promise<IstioTools>;

const HEARTBEAT_MS = 2000;

/**
 * Resolves builds from `known` (tool paths by `ensureTools` name, as the worker started with them),
 * else through `ensureTools`, which finds a build in the cache or builds it.
 */
export function istioToolsOf(known: Record<string, string>, progress: Progress = stderrProgress): IstioToolsOf {
  const pending = new Map<string, Promise<IstioTools>>();
  return async (version, { heartbeat, signal }) => {
    const build = istioBuildOf(version);
    if (!build) {
      throw new PermanentError(`istio.version ${version} is of no Istio build meshflow pins (${ISTIO_LINES})`);
    }
    const names = [istioToolName('istioctl', build.line), istioToolName('pilot-discovery', build.line)];
    let tools = pending.get(build.line);
    if (!tools) {
      const found = names.every((n) => known[n]) ? Promise.resolve(known) : ensureTools(names, progress);
      tools = found.then((paths) => ({
        istioctl: paths[names[0]],
        addons: path.join(path.dirname(paths[names[0]]), ISTIO_ADDONS_DIR),
        gatewayApiCrds: path.join(path.dirname(paths[names[0]]), GATEWAY_API_CRDS),
        pilotDiscovery: paths[names[1]],
      }));
      // A failed build is tried again by the next step that asks.
      tools.catch(() => pending.delete(build.line));
      pending.set(build.line, tools);
    }
    const started = Date.now();
    const beat = setInterval(
      () => heartbeat({ waitingFor: `Istio ${build.line} build`, for: formatDuration(Date.now() - started) }),
      HEARTBEAT_MS,
    );
    const cancelled = new Promise<never>((_, reject) =>
      signal?.addEventListener('abort', () => reject(signal.reason as Error), { once: true }),
    );
    try {
      signal?.throwIfAborted();
      return await Promise.race([tools, cancelled]);
    } catch (err) {
      if (!(err instanceof ToolSetupError)) throw err;
      throw new PermanentError(
        `the Istio ${build.line} build (${names.join(', ')}) is not ready on this worker: ${err.message}\n` +
          `Run \`meshflow setup --all\` where the worker runs, or set ${toolSpec(names[0]).envVar} and ` +
          `${toolSpec(names[1]).envVar} to builds of ${build.stamp}.`,
      );
    } finally {
      clearInterval(beat);
    }
  };
}
