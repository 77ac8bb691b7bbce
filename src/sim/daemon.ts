// SIMULATED DATA PLANE, run as a process next to a local cluster's API server:
//   node dist/sim/daemon.js <name> <index> <kubeconfig>
import { startSimulatedDataPlane } from './data-plane';

async function main(): Promise<void> {
  const [name, index, kubeconfig] = process.argv.slice(2);
  if (!name || !index || !kubeconfig) throw new Error('usage: daemon.js <name> <index> <kubeconfig>');
  const plane = await startSimulatedDataPlane([{ name, index: Number(index), kubeconfig }], (l) => console.log(l));
  const stop = () => void plane.stop().finally(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
