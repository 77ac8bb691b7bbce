// `meshflow gke-emulator`: the GKE emulator as a foreground process, for trying the GKE provider
// by hand. Prints where it listens as environment assignments on stdout (logs go to stderr) and
// runs until SIGINT or SIGTERM; its clusters outlive it, as a cloud's would.
import path from 'node:path';
import { GkeEmulator } from '../emulators/gke/emulator';
import { LOCAL_TOOL_NAMES, localTools } from '../local/tools';
import { stateDir } from '../paths';
import { ensureTools } from '../tools/install';
import { stderrProgress } from '../util/progress';

export interface GkeEmulatorCommandOptions {
  port?: string;
  computePort?: string;
  latency?: string;
  stateDir?: string;
  reset?: boolean;
}

function number(value: string | undefined, flag: string, check: (n: number) => boolean): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || !check(n)) throw new Error(`${flag} ${value}: not a valid value`);
  return n;
}

export async function gkeEmulatorCommand(opts: GkeEmulatorCommandOptions): Promise<void> {
  // Its own state directory, not meshflow's: gc would take the backing clusters (gke-<hash>) for
  // leftovers of a mesh named "gke".
  const dir = path.resolve(opts.stateDir ?? path.join(stateDir(), 'gke-emulator'));
  const isPort = (n: number) => Number.isInteger(n) && n >= 0 && n <= 65535;
  const grpcPort = number(opts.port, '--port', isPort) ?? 0;
  // Beside the gRPC port by default, where GKE_COMPUTE_EMULATOR_HOST defaults to.
  const computePort = number(opts.computePort, '--compute-port', isPort) ?? (grpcPort ? grpcPort + 1 : 0);
  const latency = number(opts.latency, '--latency', (n) => n >= 0);
  // istiod is not needed to play a GKE cluster.
  const names = LOCAL_TOOL_NAMES.filter((n) => n !== 'pilot-discovery');
  const tools = localTools(await ensureTools([...names], stderrProgress));
  const emulator = new GkeEmulator({ stateDir: dir, tools, latency, grpcPort, computePort, log: stderrProgress });
  const resetCommand = `meshflow gke-emulator --reset${opts.stateDir ? ` --state-dir ${dir}` : ''}`;
  if (opts.reset) {
    await emulator.reset();
    stderrProgress(`GKE emulator in ${dir}: every cluster (and its local cluster) and firewall rule deleted`);
    return;
  }
  const hosts = await emulator.start();
  process.stdout.write(`GKE_EMULATOR_HOST=${hosts.grpc}\nGKE_COMPUTE_EMULATOR_HOST=${hosts.compute}\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await emulator.stop();
  const kept = emulator.clusters().length;
  stderrProgress(
    `GKE emulator stopped (${signal}); its state and ${kept} cluster(s) are kept in ${dir}, their local clusters ` +
      `still running; \`${resetCommand}\` deletes them`,
  );
}
