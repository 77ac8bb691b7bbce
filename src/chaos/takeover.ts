// The chaos row for meshes any worker runs: two `meshflow worker` processes share one Kubernetes
// trust store; for each of `count` GKE (emulated) meshes, one of the two is SIGKILLed for good at
// a random point of its provisioning and a new worker (a new host) takes its place. Every mesh
// must end ready on the workers left, then `down` must leave no emulated cluster and no Secret.
import { meshHandle, meshStatus, startMesh, teardownMesh } from '../client';
import { sleep } from '../util/net';
import type { RunResult } from './harness';
import { type RigWorker, SharedStoreRig } from './shared-store-rig';

export async function takeoverRuns(
  tools: Record<string, string>,
  count: number,
  random: () => number,
  report: (r: RunResult) => void,
  onStop: (stop: () => Promise<void>) => void,
): Promise<RunResult[]> {
  const rig = new SharedStoreRig(tools);
  onStop(() => rig.stop());
  const results: RunResult[] = [];
  try {
    await rig.start();
    let hosts = 0;
    const fresh = async () => {
      const w = rig.startWorker(`chaos-${++hosts}`);
      await rig.untilPolling(w);
      return w;
    };
    const workers: RigWorker[] = [await fresh(), await fresh()];
    for (let i = 0; i < count; i++) {
      const mesh = `takeover${i}`;
      const at = Math.round(500 + random() * 20_000);
      const victim = Math.floor(random() * 2);
      const result: RunResult = {
        mesh,
        fault: `worker ${workers[victim].host} SIGKILLed for good at ${at} ms`,
        endedReady: false,
        fullyCompensated: false,
        duplicates: [],
        leftovers: [],
      };
      try {
        const t0 = Date.now();
        await startMesh(rig.client, SharedStoreRig.gkeMesh(mesh));
        let killed = false;
        for (;;) {
          if (!killed && Date.now() - t0 >= at) {
            const s = await meshStatus(rig.client, mesh).catch(() => undefined);
            const running = s?.steps.find((st) => st.state === 'running');
            result.fault += running ? ` (during ${running.id})` : s ? ` (${s.phase})` : '';
            await rig.kill(workers[victim]);
            workers[victim] = await fresh();
            killed = true;
          }
          const s = await meshStatus(rig.client, mesh).catch(() => undefined);
          if (s && s.phase !== 'provisioning' && killed) {
            result.endedReady = s.phase === 'ready';
            result.ended = s.error ? `${s.phase}: ${s.error}` : s.phase;
            break;
          }
          if (Date.now() - t0 > 6 * 60_000) throw new Error('not ready or compensated within 6 minutes');
          await sleep(250);
        }
        await teardownMesh(rig.client, mesh).catch(() => undefined); // a compensated mesh has ended already
        const final = await meshHandle(rig.client, mesh)
          .result()
          .catch(() => undefined);
        result.leftovers = await rig.leftovers(mesh);
        const creates = rig.emulator!.calls().CreateCluster ?? 0;
        if (creates > i + 1) result.duplicates.push(`${creates} CreateCluster calls for ${i + 1} meshes`);
        result.fullyCompensated = final?.phase === 'deleted' && result.leftovers.length === 0;
      } catch (err) {
        result.error = (err as Error).message;
      }
      results.push(result);
      report(result);
    }
  } finally {
    await rig.stop();
  }
  return results;
}
